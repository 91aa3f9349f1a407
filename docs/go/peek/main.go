// Command peek is the lab's peek lesson in Go (docs/lab.md, step 7): a proxy like
// correct that first looks at what the client sent, prints it, and only then
// starts the copies. How it looks decides whether the upstream gets those bytes:
//
//   - -mode read: conn.Read(data), the seed's way. The bytes leave the socket and
//     nothing sends them on: the upstream never sees them.
//   - -mode replay: conn.Read(data) too, but the copy reads from
//     io.MultiReader(bytes.NewReader(data[:n]), conn), a reader that replays the
//     bytes taken before it goes on with the socket. Nothing is lost.
//   - -mode peek: bufio.Reader.Peek. The bytes stay in the bufio.Reader's buffer,
//     and copying from that reader (not from conn) replays them first.
//
// Rust has TcpStream::peek, which asks the kernel for the bytes without taking
// them out of the socket at all (tests/classroom/first_bytes.rs). Routing by the
// TLS server name (SNI) needs exactly this: read the ClientHello's server_name,
// then hand the whole ClientHello to the chosen upstream.
//
// Usage: peek -mode peek -listen 127.0.0.1:9000 -upstream 127.0.0.1:9001
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	mode := flag.String("mode", "peek", "how to look at the first bytes: read, replay or peek")
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	upstream := flag.String("upstream", "", "server to forward to, host:port (required)")
	flag.Parse()
	if *upstream == "" || (*mode != "read" && *mode != "replay" && *mode != "peek") {
		fmt.Fprintln(os.Stderr, "peek: -mode read|replay|peek and -upstream host:port are required")
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
			log.Println("accept:", err)
			continue
		}
		go handleConn(conn.(*net.TCPConn), *upstream, *mode)
	}
}

// handleConn is correct's handleConn with a look at the first bytes before the
// copies start. The client -> upstream copy reads from `from`: the socket
// itself after a read, or a reader that gives the looked-at bytes back first.
func handleConn(conn *net.TCPConn, upstream string, mode string) {
	defer conn.Close()

	var from io.Reader
	switch mode {
	case "read":
		data := make([]byte, 128)
		n, err := conn.Read(data) // takes the bytes out of the socket
		if err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "first bytes (read): %q\n", data[:n])
		from = conn // the bytes in data are never sent on
	case "replay":
		data := make([]byte, 128)
		n, err := conn.Read(data)
		if err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "first bytes (read, then replayed): %q\n", data[:n])
		from = io.MultiReader(bytes.NewReader(data[:n]), conn)
	case "peek":
		br := bufio.NewReader(conn)
		// Peek(n) waits for n bytes, so ask for one, then look at all that came.
		if _, err := br.Peek(1); err != nil {
			return
		}
		first, _ := br.Peek(br.Buffered())
		fmt.Fprintf(os.Stderr, "first bytes (peek): %q\n", first)
		from = br // reading br gives the peeked bytes first, then the socket
	}

	c, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Println("dial:", err)
		return
	}
	up := c.(*net.TCPConn)
	defer up.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // client -> upstream, from the reader chosen above
		defer wg.Done()
		if _, err := io.Copy(up, from); err != nil {
			conn.Close()
			up.Close()
			return
		}
		up.CloseWrite()
	}()
	if _, err := io.Copy(conn, up); err != nil {
		conn.Close()
		up.Close()
	} else {
		conn.CloseWrite()
	}
	wg.Wait()
}
