// Command seed is the proxy from the seed article ("Go io.Copy forwarding:
// solving the lost first message"), written out as the article shows it.
//
// Keep it as it is: it is wrong on purpose. It has three bugs.
//
//  1. handleConn reads up to 128 bytes from the client "to look at them" and
//     never forwards them: the client's first message is lost. (The article
//     finds and fixes this one.)
//  2. main dials the upstream ONCE, before the accept loop, and every client
//     shares that one connection: their bytes interleave on one stream, and a
//     reply goes to whichever handler happens to be reading.
//  3. Nothing half-closes (CloseWrite): the upstream never learns that a
//     client has finished sending.
//
// The article elides the listen/dial code and the defer ("same as the
// original"); this file fills them in with the shortest code that matches
// its description. Usage: seed -listen 127.0.0.1:9000 -upstream 127.0.0.1:9001
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
		fmt.Fprintln(os.Stderr, "seed: -upstream host:port is required")
		os.Exit(2)
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal("Listen error:", err)
	}
	// BUG 2: one upstream connection for the whole program, dialled before
	// any client arrives, and handed to every client below.
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

	// BUG 1: the article's bug. These bytes leave the socket's receive buffer
	// now; nothing ever writes them to dstConn, so io.Copy below never sees them.
	data := make([]byte, 128)
	_, err := conn.Read(data)
	if err != nil {
		log.Println("Read error:", err)
		return
	}

	go io.Copy(dstConn, conn) // client -> server. BUG 3: no CloseWrite when it ends.
	io.Copy(conn, dstConn)    // server -> client, reading the SHARED dstConn
}
