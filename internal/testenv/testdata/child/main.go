// Command child is the program testenv's own tests start: what it does is
// chosen by its first argument.
//
//	env NAME...  print NAME=value for each NAME (NAME= when unset), then exit
//	exit CODE    write "to stdout" and "to stderr", then exit with CODE
//	serve        listen on 127.0.0.1:0, print "listening ADDR", answer GET /health
//	             with 200 until SIGTERM, then print "stopping" and exit 0
//	version      print the value main.version was linked with
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// version is set with -ldflags "-X main.version=...".
var version = "unset"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "child: no command")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "env":
		for _, name := range os.Args[2:] {
			fmt.Printf("%s=%s\n", name, os.Getenv(name))
		}
	case "exit":
		code, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(code)
	case "serve":
		serve()
	case "version":
		fmt.Println(version)
	default:
		fmt.Fprintln(os.Stderr, "child: unknown command", os.Args[1])
		os.Exit(2)
	}
}

func serve() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	http.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	go http.Serve(ln, nil)
	fmt.Println("some line first")
	fmt.Printf("listening %s\n", ln.Addr())
	<-stop
	fmt.Println("stopping")
}
