// Command httpecho is the HTTP ceiling of the benchmark suite
// (bench/run.sh): a keep-alive responder that does no tracking. Each
// connection is one goroutine reading requests up to their empty line and
// answering each with a fixed, valid bencoded reply and a Content-Length:
//
//	GET /scrape... -> d5:filesdee (a tracker may leave out hashes it does not know)
//	any other GET  -> interval, min interval and N fixed compact peers,
//	                  N = min(-peers, the query's numwant if given)
//
// Nothing is parsed beyond the request line, so `warden load` counts every
// reply as a valid one while the server spends only what the kernel and
// Go's network poller make it spend. Stop it with SIGINT or SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
)

const maxHeaderLines = 100

func main() {
	addr := flag.String("addr", "127.0.0.1:26971", "TCP address to answer on")
	peers := flag.Int("peers", 50, "peers in each announce reply (fewer if the query's numwant is lower)")
	flag.Parse()
	if *peers < 0 || *peers > 1000 {
		log.Fatal("httpecho: -peers must be 0-1000")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("httpecho: %v", err)
	}
	replies := announceReplies(*peers)
	scrape := response([]byte("d5:filesdee"))
	fmt.Fprintf(os.Stderr, "httpecho: answering on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			log.Fatalf("httpecho: %v", err)
		}
		go serve(c, replies, scrape)
	}
}

// announceReplies returns the full response for each peer count 0..peers.
func announceReplies(peers int) [][]byte {
	out := make([][]byte, peers+1)
	compact := make([]byte, 6*peers)
	for i := range peers {
		copy(compact[6*i:], []byte{127, 3, byte(i >> 8), byte(i), byte((6881 + i) >> 8), byte(6881 + i)})
	}
	for n := range out {
		body := []byte("d8:intervali1800e12:min intervali900e5:peers")
		body = strconv.AppendInt(body, int64(6*n), 10)
		body = append(body, ':')
		body = append(body, compact[:6*n]...)
		body = append(body, 'e')
		out[n] = response(body)
	}
	return out
}

func response(body []byte) []byte {
	b := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ")
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// serve answers the requests of one connection until it closes or sends
// something that is not a request.
func serve(c net.Conn, replies [][]byte, scrape []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		reply := scrape
		if !bytes.HasPrefix(line, []byte("GET /scrape")) {
			reply = replies[numWant(line, len(replies)-1)]
		}
		for n := 0; ; n++ { // the header, up to its empty line
			h, err := br.ReadSlice('\n')
			if err != nil || n == maxHeaderLines {
				return
			}
			if len(bytes.TrimRight(h, "\r\n")) == 0 {
				break
			}
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// numWant returns the request line's numwant, at most limit (and limit if
// there is none or it does not parse).
func numWant(line []byte, limit int) int {
	i := bytes.Index(line, []byte("numwant="))
	if i < 0 {
		return limit
	}
	v := line[i+len("numwant="):]
	if j := bytes.IndexAny(v, "& "); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n > limit {
		return limit
	}
	return n
}
