// spawn_cost starts N goroutines that each park on a channel, the way a
// relay's copy goroutines sit waiting for bytes, and reports what that cost:
// time per goroutine, stack memory, resident memory. Its Rust twin is
// spawn_cost.rs; docs/go-to-rust.md ("The honest differences") quotes both.
//
//	go run tests/classroom/spawn_cost.go 10000
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	n := 10000
	if len(os.Args) > 1 {
		var err error
		if n, err = strconv.Atoi(os.Args[1]); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "spawn_cost: %q is not a positive count\n", os.Args[1])
			os.Exit(2)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rssBefore := statusKiB("VmRSS")

	release := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-release // parked, like a goroutine blocked in conn.Read
			finished.Done()
		}()
	}
	started.Wait()
	elapsed := time.Since(t0)

	runtime.ReadMemStats(&after)
	rssAfter := statusKiB("VmRSS")
	close(release)
	finished.Wait()

	stackKiB := float64(after.StackInuse-before.StackInuse) / 1024
	fmt.Printf("goroutines: %d started and parked in %v: %.0f ns each\n",
		n, elapsed.Round(time.Microsecond), float64(elapsed.Nanoseconds())/float64(n))
	fmt.Printf("goroutine stacks in use: %.0f KiB: %.1f KiB each\n", stackKiB, stackKiB/float64(n))
	fmt.Printf("resident memory grew by %d KiB: %.1f KiB each\n",
		rssAfter-rssBefore, float64(rssAfter-rssBefore)/float64(n))
}

// statusKiB reads one "Name: 123 kB" line of /proc/self/status (Linux only).
func statusKiB(name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == name+":" {
			kib, _ := strconv.ParseInt(fields[1], 10, 64)
			return kib
		}
	}
	return 0
}
