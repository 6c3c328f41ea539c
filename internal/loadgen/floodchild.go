package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The legit class in a process of its own (Config.LegitRealtime). A flood
// generator that shares a core with the legit class delays it: on a
// 2-core VM a normal-priority prober beside an HTTP flood measured 10-50
// ms of its own scheduling as if it were the tracker's latency. So the
// flood's process starts a child (Config.ChildCommand, which runs
// ServeLegitChild) that puts its threads in SCHED_FIFO and runs the legit
// class alone; the kernel then runs it as soon as a reply or timer wakes
// it, whatever the flood does.
//
// The two talk in lines of JSON over the child's standard input and
// output: the parent sends a childRequest; the child prepares the run and
// answers childMsg{Ready}; the parent prepares the flood and sends "go";
// both start their clocks and run for the same warm-up and duration; the
// child ends with childMsg{Report}, or childMsg{Error} at any point.

// childRequest is what the parent asks of the child.
type childRequest struct {
	Config   Config `json:"config"`
	Priority int    `json:"priority"`
}

// childMsg is a line from the child.
type childMsg struct {
	Ready  bool    `json:"ready,omitempty"`
	Error  string  `json:"error,omitempty"`
	Report *Report `json:"report,omitempty"`
}

// childReadyWait bounds the wait for the child to get ready (to load the
// hashes and bind its sources).
const childReadyWait = time.Minute

// legitChild is the parent's handle on the child.
type legitChild struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
	priority int
}

// startLegitChild starts the child for cfg's legit class and returns once
// it is ready to start. The child is killed if ctx is done.
func startLegitChild(ctx context.Context, cfg *Config) (*legitChild, error) {
	ccfg := *cfg
	ccfg.FloodRate = FloodOff
	ccfg.LegitRealtime = 0
	ccfg.ServerPID = 0
	ccfg.ChildCommand = nil
	req, err := json.Marshal(childRequest{Config: ccfg, Priority: cfg.LegitRealtime})
	if err != nil {
		return nil, fmt.Errorf("legit process: %w", err)
	}
	cmd := exec.CommandContext(ctx, cfg.ChildCommand[0], cfg.ChildCommand[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = cfg.Timeout + 5*time.Second
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("legit process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("legit process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start legit process %s: %w", strings.Join(cfg.ChildCommand, " "), err)
	}
	c := &legitChild{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), priority: cfg.LegitRealtime}
	if _, err := in.Write(append(req, '\n')); err != nil {
		return nil, c.fail(fmt.Errorf("legit process: %w", err))
	}
	ready := make(chan error, 1)
	go func() {
		m, err := c.read()
		if err == nil && !m.Ready {
			err = errors.New("legit process: did not say it was ready")
		}
		ready <- err
	}()
	t := time.NewTimer(childReadyWait)
	defer t.Stop()
	select {
	case err := <-ready:
		if err != nil {
			return nil, c.fail(err)
		}
	case <-t.C:
		return nil, c.fail(fmt.Errorf("legit process: not ready after %v", childReadyWait))
	}
	return c, nil
}

// read reads one message; a message with an error is returned as one.
func (c *legitChild) read() (childMsg, error) {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return childMsg{}, fmt.Errorf("legit process: %w", noEOF(err))
	}
	var m childMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return childMsg{}, fmt.Errorf("legit process: reading its message: %w", err)
	}
	if m.Error != "" {
		return childMsg{}, fmt.Errorf("legit process: %s", m.Error)
	}
	return m, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("it ended without a report")
	}
	return err
}

// start tells the child to start its clock.
func (c *legitChild) start() error {
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		return c.fail(fmt.Errorf("legit process: %w", err))
	}
	return nil
}

// report waits for the child's report, at most Timeout plus a margin
// after its run should have ended (the child bounds its own run), and
// for the child to exit.
func (c *legitChild) report() (*Report, error) {
	m, err := c.read()
	if err == nil && m.Report == nil {
		err = errors.New("legit process: no report")
	}
	if err != nil {
		return nil, c.fail(err)
	}
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		return nil, fmt.Errorf("legit process: %w", err)
	}
	return m.Report, nil
}

// fail stops the child and returns err.
func (c *legitChild) fail(err error) error {
	c.in.Close()
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(os.Interrupt)
	}
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	return err
}

// ServeLegitChild runs the legit class for a parent process that runs the
// flood (Config.LegitRealtime): it reads the parent's request from in,
// puts every thread of this process in SCHED_FIFO at the priority asked
// for, prepares the run, says so on out, starts when in says "go", and
// writes its report to out. It returns an error (also sent to the parent)
// if any step fails, e.g. for lack of the privilege to use real-time
// priorities. It is meant to be the whole of a child process.
func ServeLegitChild(ctx context.Context, in io.Reader, out io.Writer) error {
	send := func(m childMsg) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
	fail := func(err error) error {
		_ = send(childMsg{Error: err.Error()})
		return err
	}
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	var req childRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return fail(fmt.Errorf("read request: %w", err))
	}
	cfg := req.Config
	if cfg.Scenario != ScenarioFlood || cfg.FloodRate != FloodOff || cfg.LegitRate <= 0 || cfg.LegitRealtime != 0 {
		return fail(errors.New("request is not a legit class alone"))
	}
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	if err := setRealtime(req.Priority); err != nil {
		return fail(fmt.Errorf("real-time priority %d: %w", req.Priority, err))
	}
	hashes, err := loadHashes(&cfg)
	if err != nil {
		return fail(err)
	}
	gate := func() error {
		if err := send(childMsg{Ready: true}); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("wait for the parent: %w", err)
		}
		if line != "go\n" {
			return fmt.Errorf("wait for the parent: got %q", line)
		}
		return nil
	}
	rep, err := runFlood(ctx, &cfg, hashes, nil, gate)
	if err != nil {
		return fail(err)
	}
	// Threads started during the run inherit the policy; check that none
	// escaped it, so the report never claims a priority the run lacked.
	if ok, err := threadsRealtime(req.Priority); err != nil || !ok {
		return fail(fmt.Errorf("not every thread kept real-time priority %d (%v)", req.Priority, err))
	}
	return send(childMsg{Report: &rep})
}
