// Command articlefix is the seed article's fix, exactly as published: the
// handler no longer reads by hand, it starts the two copies at once, so the
// first message arrives.
//
// What the fix does not change (docs/go-to-rust.md, "What the article does
// not say"):
//
//   - main still dials ONE upstream connection shared by every client;
//   - nothing calls CloseWrite, so the upstream never sees the client's EOF;
//   - the goroutine's deferred conn.Close() closes the client as soon as the
//     client stops sending, even if the server's reply is still on its way.
//
// Usage: articlefix -listen 127.0.0.1:9000 -upstream 127.0.0.1:9001
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	upstream := flag.String("upstream", "", "server to forward to, host:port (required)")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "articlefix: -upstream host:port is required")
		os.Exit(2)
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal("Listen error:", err)
	}
	// Still one upstream connection for every client (unchanged from the seed).
	dstConn, err := net.Dial("tcp", *upstream)
	if err != nil {
		log.Fatal("Dial error:", err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", l.Addr())

	for {
		conn, err := l.Accept()
		if err != nil {
			log.Fatal("Accept error:", err)
		}
		go handleConn(conn, dstConn)
	}
}

func handleConn(conn net.Conn, dstConn net.Conn) {
	defer conn.Close()

	// The fix: no hand-made Read; both copies start straight away.
	go func() {
		// Closes the CLIENT when the client stops sending (EOF), even though
		// the io.Copy below may still be waiting to deliver the reply.
		defer conn.Close()
		io.Copy(dstConn, conn) // no CloseWrite: the upstream never sees EOF
	}()
	io.Copy(conn, dstConn)
}
