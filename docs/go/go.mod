// The Go programs of the classroom chapter (docs/go-to-rust.md) and lab (docs/lab.md).
// Standard library only: building them needs no network. Go 1.19 is Debian bookworm's golang-go.
module tcprelay/docs/go

go 1.19
