package main

import (
	"net"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
)

// TestReply checks each answer as the load tool does: well formed, with
// the request's transaction ID, and the peers cut to numwant.
func TestReply(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e, err := newEcho(pc, 4, 50)
	if err != nil {
		t.Fatal(err)
	}
	announce := func(numWant int32) []byte {
		return bep15.AppendAnnounce(nil, 1, 7, &bep15.Announce{NumWant: numWant, Port: 1})
	}
	badMagic := bep15.AppendConnect(nil, 7)
	badMagic[0] = 1
	tests := []struct {
		name  string
		in    []byte
		check func([]byte) bep15.Fault
	}{
		{"connect", bep15.AppendConnect(nil, 7), connectOK},
		{"announce, numwant 3", announce(3), peersWant(3)},
		{"announce, numwant -1", announce(-1), peersWant(50)},
		{"announce, numwant over -peers", announce(500), peersWant(50)},
		{"scrape of 2", bep15.AppendScrape(nil, 1, 7, make([]bittorrent.InfoHash, 2)), scrapeOf(2)},
		{"scrape of 100", bep15.AppendScrape(nil, 1, 7, make([]bittorrent.InfoHash, 100)), scrapeOf(maxScrape)},
		{"connect, wrong magic", badMagic, nil},
		{"announce, short", announce(1)[:97], nil},
		{"scrape of nothing", bep15.AppendScrape(nil, 1, 7, nil), nil},
		{"error action", bep15.AppendHeader(nil, bep15.Header{Action: bep15.ActionError, TxID: 7}), nil},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), nil},
	}
	for _, tt := range tests {
		r := e.reply(nil, tt.in)
		if tt.check == nil {
			if r != nil {
				t.Errorf("%s: reply %x, want none", tt.name, r)
			}
			continue
		}
		if _, txid, _ := bep15.ParseReplyHeader(r); txid != 7 {
			t.Errorf("%s: reply %x, want transaction ID 7", tt.name, r)
		}
		if f := tt.check(r); f != bep15.NoFault {
			t.Errorf("%s: reply %x: %v", tt.name, r, f)
		}
	}
}

// peersWant checks an announce reply carries exactly n IPv4 peers.
func peersWant(n int) func([]byte) bep15.Fault {
	return func(r []byte) bep15.Fault {
		if _, f := bep15.CheckAnnounce(r, false, int32(n)); f != bep15.NoFault {
			return f
		}
		if len(r) != bep15.AnnounceReplyLen+n*bittorrent.CompactLen4 {
			return bep15.FaultLength
		}
		return bep15.NoFault
	}
}

func connectOK(r []byte) bep15.Fault {
	_, f := bep15.CheckConnect(r)
	return f
}

func scrapeOf(n int) func([]byte) bep15.Fault {
	return func(r []byte) bep15.Fault { return bep15.CheckScrape(r, n) }
}

// TestRun answers a client over loopback, through the batch I/O.
func TestRun(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEcho(pc, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- e.run() }()
	c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("no reply for this"))
	c.Write(bep15.AppendConnect(nil, 9))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if _, f := bep15.CheckConnect(buf[:n]); err != nil || f != bep15.NoFault {
		t.Errorf("connect reply %x, %v: %v", buf[:n], err, f)
	}
	pc.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("run = nil after the socket closed, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the socket closed")
	}
}
