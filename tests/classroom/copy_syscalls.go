// copy_syscalls copies MiB mebibytes from one TCP connection to another with
// io.Copy, all over loopback inside this one process, and reports the time.
// Run it under strace to see HOW Go copies: on Linux, io.Copy between two
// *net.TCPConn goes through (*TCPConn).ReadFrom, which uses splice(2) through
// a pipe, so the bytes never enter this process. Its Rust twin is
// copy_syscalls.rs.
//
//	go build -o target/lab/copy_syscalls_go tests/classroom/copy_syscalls.go
//	strace -f -c -e trace=splice,read,write,recvfrom,sendto target/lab/copy_syscalls_go 64
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	mib := 64
	if len(os.Args) > 1 {
		var err error
		if mib, err = strconv.Atoi(os.Args[1]); err != nil || mib < 1 {
			fmt.Fprintf(os.Stderr, "copy_syscalls: %q is not a positive number of MiB\n", os.Args[1])
			os.Exit(2)
		}
	}
	total := int64(mib) << 20

	from, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	to, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}

	// A sender writes `total` bytes into the first connection...
	go func() {
		c, err := net.Dial("tcp", from.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		chunk := make([]byte, 64<<10)
		for sent := int64(0); sent < total; sent += int64(len(chunk)) {
			if _, err := c.Write(chunk); err != nil {
				log.Fatal(err)
			}
		}
		c.Close()
	}()
	// ...and a receiver counts what comes out of the second one.
	received := make(chan int64)
	go func() {
		c, err := to.Accept()
		if err != nil {
			log.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()

	src, err := from.Accept()
	if err != nil {
		log.Fatal(err)
	}
	dst, err := net.Dial("tcp", to.Addr().String())
	if err != nil {
		log.Fatal(err)
	}

	t0 := time.Now()
	copied, err := io.Copy(dst, src) // the line under study: *TCPConn to *TCPConn
	if err != nil {
		log.Fatal(err)
	}
	dst.(*net.TCPConn).CloseWrite()
	if got := <-received; got != total || copied != total {
		log.Fatalf("copied %d and received %d bytes, expected %d", copied, got, total)
	}
	elapsed := time.Since(t0)
	fmt.Printf("go io.Copy: %d MiB socket to socket in %v: %.0f MiB/s\n",
		mib, elapsed.Round(time.Millisecond), float64(mib)/elapsed.Seconds())
}
