package app

// Version and Commit name the build. They are set only by the linker:
//
//	go build -ldflags "-X github.com/fluxcode/fluxcode/internal/app.Version=1.2.3 -X github.com/fluxcode/fluxcode/internal/app.Commit=$(git rev-parse --short HEAD)" ./cmd/fluxcode
var (
	Version = "dev"
	Commit  = ""
)
