package deploy

import (
	"debug/elf"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// The Dockerfile's build, run here: the same flags, so that what the image gets is tested.

// testVersion and testCommit are what the test passes as the Dockerfile's build args.
const (
	testVersion = "9.8.7-deploytest"
	testCommit  = "abc1234"
)

// dockerfileBuild returns the ldflags and package of the Dockerfile's "go build", with the
// build args substituted.
func dockerfileBuild(t testing.TB) (ldflags, pkg string) {
	t.Helper()
	src := strings.ReplaceAll(readDeployFile(t, "Dockerfile"), "\\\n", " ")
	m := regexp.MustCompile(`RUN CGO_ENABLED=0 go build ([^\n]*?)-ldflags "([^"]*)"[^\n]*?-o \S+ (\./cmd/\S+)`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal(`deploy/Dockerfile has no "RUN CGO_ENABLED=0 go build ... -ldflags "..." -o ... ./cmd/..." step`)
	}
	ldflags = strings.NewReplacer("${VERSION}", testVersion, "${COMMIT}", testCommit).Replace(m[2])
	return ldflags, m[3]
}

// fluxcodeBinary builds cmd/fluxcode once per test binary, as the Dockerfile does.
func fluxcodeBinary(t testing.TB) string {
	t.Helper()
	ldflags, pkg := dockerfileBuild(t)
	return testenv.BuildBinary(t, modulePath+"/"+strings.TrimPrefix(pkg, "./"),
		testenv.BuildFlags("-trimpath", "-ldflags", ldflags), testenv.BuildEnv("CGO_ENABLED=0"))
}

// modulePath is the module the Dockerfile builds in (its package is relative to the root).
const modulePath = "github.com/fluxcode/fluxcode"

func TestDockerfileShape(t *testing.T) {
	src := readDeployFile(t, "Dockerfile")
	// The base images are build arguments whose defaults are the official images; the binary
	// comes from the build stage unless BINARY_FROM names the prebuilt one.
	froms := regexp.MustCompile(`(?m)^FROM (.+)$`).FindAllStringSubmatch(src, -1)
	var stages []string
	for _, f := range froms {
		stages = append(stages, f[1])
	}
	want := []string{"${GO_IMAGE} AS build", "${GO_IMAGE} AS prebuilt", "${BINARY_FROM} AS binary", "${RUNTIME_IMAGE}"}
	if !slices.Equal(stages, want) {
		t.Errorf("stages %q, want %q", stages, want)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`),                                          // non-root
		regexp.MustCompile(`(?m)^EXPOSE 8080$`),                                                           // FluxCode's container port
		regexp.MustCompile(`(?m)^VOLUME \["/data"\]$`),                                                    // DATA_DIR
		regexp.MustCompile(`DATA_DIR=/data`),                                                              // ...used
		regexp.MustCompile(`(?m)^\s*CMD \["/usr/local/bin/fluxcode", "health"\]`),                         // health check
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/fluxcode"\]`),                               // the binary
		regexp.MustCompile(`(?m)^ARG GO_IMAGE=golang:1\.26$`),                                             // official bases by default
		regexp.MustCompile(`(?m)^ARG RUNTIME_IMAGE=gcr\.io/distroless/static-debian12:nonroot$`),          //
		regexp.MustCompile(`(?m)^ARG BINARY_FROM=build$`),                                                 // compiled in the image
		regexp.MustCompile(`COPY --from=binary /out/fluxcode /usr/local/bin/fluxcode`),                    // from the chosen stage
		regexp.MustCompile(`COPY --from=binary --chown=65532:65532 /out/data /data`),                      // writable by USER
		regexp.MustCompile(`(?m)^USER 65532:65532$`),                                                      // the same user
		regexp.MustCompile(`(?m)^HEALTHCHECK --interval=\S+ --timeout=\S+ --start-period=\S+ --retries=`), // bounded
	} {
		if !want.MatchString(src) {
			t.Errorf("deploy/Dockerfile lacks %s", want)
		}
	}
}

func TestLocalImagesCompileAsTheDockerfile(t *testing.T) {
	// deploy/local-images.sh compiles the binary the "prebuilt" stage takes: it must be the
	// one the build stage would make.
	want, pkg := dockerfileBuild(t)
	src := strings.ReplaceAll(readDeployFile(t, "local-images.sh"), "\\\n", " ")
	m := regexp.MustCompile(`CGO_ENABLED=0 go build -trimpath\s+-ldflags "([^"]*)"\s+-o deploy/prebuilt/fluxcode (\S+)\)`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal(`deploy/local-images.sh has no "CGO_ENABLED=0 go build -trimpath -ldflags "..." -o deploy/prebuilt/fluxcode ./cmd/..." step`)
	}
	got := strings.NewReplacer("${version}", testVersion, "${commit}", testCommit).Replace(m[1])
	if got != want || m[2] != pkg {
		t.Errorf("local-images.sh builds %s with -ldflags %q; the Dockerfile builds %s with %q", m[2], got, pkg, want)
	}
}

func TestDockerfileBuildsAStaticBinaryWithItsVersion(t *testing.T) {
	bin := fluxcodeBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader; the distroless static image has none")
		}
	}
	res := testenv.Run(t, bin, testenv.ProcessOptions{Args: []string{"version"}})
	if res.ExitCode != 0 {
		t.Fatalf("fluxcode version: exit %d\n%s", res.ExitCode, res.Output)
	}
	if !strings.Contains(res.Output, testVersion) || !strings.Contains(res.Output, testCommit) {
		t.Errorf("fluxcode version = %q; the Dockerfile's -X flags name no variable the binary has", res.Output)
	}
}

func TestImageHealthCheckFollowsTheNode(t *testing.T) {
	// The HEALTHCHECK runs "fluxcode health" with the image's environment
	// (SERVER_HOST=0.0.0.0, SERVER_PORT=8080): it must probe this node's /health and
	// exit 0 only when that answers 200.
	bin := fluxcodeBinary(t)
	status := http.StatusOK
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	probe := func() testenv.Result {
		return testenv.Run(t, bin, testenv.ProcessOptions{Args: []string{"health"},
			Env: map[string]string{"SERVER_HOST": "0.0.0.0", "SERVER_PORT": port, "DATA_DIR": "/data"}})
	}
	if res := probe(); res.ExitCode != 0 {
		t.Errorf("healthy node: fluxcode health failed: exit %d\n%s", res.ExitCode, res.Output)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if res := probe(); res.ExitCode == 0 {
		t.Errorf("node answering 503: fluxcode health exited 0")
	}
	srv.Close()
	if res := probe(); res.ExitCode == 0 {
		t.Errorf("node down: fluxcode health exited 0")
	}
}
