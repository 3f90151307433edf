// Package bench is FluxCode's benchmark harness (issue 5). The harness itself is the
// program bench/cmd/bench (see README.md); this package holds only micro-benchmarks of the
// relay path that need no running servers:
//
//	go test -run '^$' -bench . -benchmem ./bench/
package bench
