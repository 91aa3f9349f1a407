// Command correct is the proxy the seed article was reaching for, and the Go
// twin of tcprelay: for each client it dials its own upstream connection,
// copies both ways at once, passes each EOF on with CloseWrite (half-close),
// and closes both connections only after both copies have finished.
//
// docs/go-to-rust.md puts it beside the Rust version, line by line. What it
// still lacks compared with tcprelay: timeouts, a connection limit, logs.
//
// Usage: correct -listen 127.0.0.1:9000 -upstream 127.0.0.1:9001
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	upstream := flag.String("upstream", "", "server to forward to, host:port (required)")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "correct: -upstream host:port is required")
		os.Exit(2)
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal("listen: ", err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", l.Addr())

	for {
		conn, err := l.Accept()
		if err != nil {
			// One failed accept (say, out of file descriptors) must not end
			// the service for everyone: log it and go on.
			log.Println("accept:", err)
			continue
		}
		go handleConn(conn.(*net.TCPConn), *upstream)
	}
}

// handleConn is the life of one connection: dial, copy both ways, wait, close.
// tests/classroom/minimal.rs is this program in Rust, thread for goroutine;
// tcprelay's src/relay/handle_conn.rs is this function with what production
// adds, and `tcprelay --explain` prints these lines as they happen.
func handleConn(conn *net.TCPConn, upstream string) {
	defer conn.Close() // runs last: after wg.Wait(), when both copies are done

	// One upstream connection per client, dialled now, never shared.
	c, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Println("dial:", err)
		return
	}
	up := c.(*net.TCPConn)
	defer up.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // client -> upstream, on a second goroutine
		defer wg.Done()
		copyThenCloseWrite(up, conn)
	}()
	copyThenCloseWrite(conn, up) // upstream -> client, on this one
	wg.Wait()
}

// copyThenCloseWrite copies src to dst until src says EOF, then tells dst's
// peer "no more data" with CloseWrite (a FIN) while leaving dst open for
// reading: the other direction may still be carrying the reply.
func copyThenCloseWrite(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		// A reset or a failed write: this connection is over. Closing both
		// wakes the other goroutine, which may be blocked reading.
		src.Close()
		dst.Close()
		return
	}
	dst.CloseWrite()
}
