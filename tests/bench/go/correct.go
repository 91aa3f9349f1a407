// A TEMPORARY stand-in for docs/go/correct/main.go, used by peers.sh only
// while that file (written by the classroom helper) is not in this tree.
// Delete it once docs/go/correct/main.go is on main.
//
// The corrected proxy of the seed article: one upstream connection per
// client, io.Copy both ways at once, CloseWrite when a source ends, and the
// handler waits for both copies before closing.
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
	upstream := flag.String("upstream", "", "address to forward each client to")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "-upstream is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			continue
		}
		go handleConn(conn.(*net.TCPConn), *upstream)
	}
}

func handleConn(client *net.TCPConn, upstream string) {
	defer client.Close()
	dst, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Printf("dial %s: %v", upstream, err)
		return
	}
	server := dst.(*net.TCPConn)
	defer server.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(server, client)
		server.CloseWrite()
	}()
	go func() {
		defer wg.Done()
		io.Copy(client, server)
		client.CloseWrite()
	}()
	wg.Wait()
}
