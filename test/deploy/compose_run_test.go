package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// The compose deployment of MULTI_HOST.md, run for real under Docker Engine: §5's simulation
// of several hosts on one computer, with the images deploy/local-images.sh builds from
// Debian (no registry is reachable here).
//
// Where the traffic goes, all of it on this machine: the test talks to Caddy on its published
// port at 127.0.0.1. The containers reach what is published on the host through
// host.docker.internal, the host's address on Docker's default bridge (docker0): PostgreSQL,
// Redis, the extra node, and a relay to the mock upstream, which listens on 127.0.0.1 in this
// test (so the nodes are given UPSTREAM_ALLOWED_NETWORKS for that one address).

const (
	// Bounds that only keep a broken run from hanging; a passing run is far below each.
	imagesBound  = 30 * time.Minute // the first run debootstraps two Debian file systems
	composeBound = 5 * time.Minute
	serveBound   = 90 * time.Second

	// The compose project names of the simulated hosts, fixed so that a run cleans up what
	// an interrupted one left behind.
	infraProject = "fluxcode-test-infra"
	appProject   = "fluxcode-test-app"
	nodeProject  = "fluxcode-test-node1"

	runAdminEmail = "admin@fluxcode.local" // the examples' ADMIN_EMAIL
	runModel      = "claude-sonnet-5-5"
)

// TestComposeDeploymentRunsUnderDocker (issue 15, must-show 5): the compose deployment
// serves and bills a request through Caddy, and a node joins by the upstream list.
func TestComposeDeploymentRunsUnderDocker(t *testing.T) {
	dockerCLI := requireDocker(t)
	began := time.Now()
	images := buildLocalImages(t)
	t.Logf("deploy/local-images.sh took %s", time.Since(began).Round(time.Second))
	hostIP := dockerHostAddress(t, dockerCLI, images["FLUXCODE_IMAGE"])

	// The example env files, filled in as MULTI_HOST.md §5 says, one per simulated host.
	// Published ports are 0: Docker picks free ones (no race with other programs for a port
	// chosen beforehand), and the test asks compose which.
	mock := mockupstream.New(mockupstream.Options{})
	if err := mock.Start(); err != nil {
		t.Fatalf("start the mock upstream: %v", err)
	}
	t.Cleanup(func() { mock.Close() })
	upstream := relay(t, hostIP, strings.TrimPrefix(mock.URL(), "http://"))

	infraEnv := filledExample(t, composeFiles[1])
	maps.Copy(infraEnv, images)
	maps.Copy(infraEnv, map[string]string{
		"POSTGRES_BIND_HOST": hostIP, "POSTGRES_EXPOSE_PORT": "0",
		"REDIS_BIND_HOST": hostIP, "REDIS_EXPOSE_PORT": "0",
	})
	// What app and node share: where the state host is (its ports once it runs), the
	// secrets, the mock's relay.
	shared := map[string]string{
		"DATABASE_HOST": "host.docker.internal", "REDIS_HOST": "host.docker.internal",
		"UPSTREAM_ALLOWED_NETWORKS": hostIP + "/32",
		"DATABASE_MAX_OPEN_CONNS":   "5", "DATABASE_MAX_IDLE_CONNS": "2",
	}
	appEnv := filledExample(t, composeFiles[2])
	maps.Copy(appEnv, images)
	maps.Copy(appEnv, shared)
	maps.Copy(appEnv, map[string]string{
		"HTTP_PORT": "0", "HTTPS_PORT": "0", "CADDY_ADDRESS": "",
		"CADDY_HEALTH_INTERVAL": "1s", "NODE_NAME": "entry",
	})
	nodeEnv := filledExample(t, composeFiles[3])
	maps.Copy(nodeEnv, images)
	maps.Copy(nodeEnv, shared)
	maps.Copy(nodeEnv, map[string]string{
		"NODE_BIND_HOST": hostIP, "NODE_PORT": "0", "NODE_NAME": "node1",
		// Caddy's requests come from the app's compose network.
		"TRUSTED_PROXIES": appEnv["APP_NETWORK_SUBNET"],
	})

	dir := t.TempDir()
	infra := newProject(t, dockerCLI, infraProject, "docker-compose.infra.yml", dir, infraEnv)
	app := newProject(t, dockerCLI, appProject, "docker-compose.app.yml", dir, appEnv)
	node := newProject(t, dockerCLI, nodeProject, "docker-compose.node.yml", dir, nodeEnv)
	for _, p := range []*project{node, app, infra} {
		p.down(t) // what an interrupted run left
		t.Cleanup(func() { p.down(t) })
	}

	// §5.2 and §5.3: the state host, then the entry host; health through Caddy.
	infra.up(t)
	for _, p := range []*project{app, node} {
		p.env["DATABASE_PORT"] = infra.port(t, "postgres", 5432)
		p.env["REDIS_PORT"] = infra.port(t, "redis", 6379)
		p.writeEnv(t)
	}
	app.up(t)
	entry := "http://127.0.0.1:" + app.port(t, "caddy", 80)
	retryUntil(t, "/health through Caddy", func() error { return wantStatus(entry+"/health", http.StatusOK) }, app)

	// A relayed request through Caddy, billed once in PostgreSQL.
	admin := testenv.Login(t, entry, runAdminEmail, appEnv["ADMIN_PASSWORD"])
	tn := newRunTenant(t, entry, admin, "http://host.docker.internal:"+upstream)
	first := relayedRequest(t, entry, tn.key, app)
	waitBilled(t, entry, admin, tn.userID, []string{first}, app)

	// §5.4: a node on its own "host", added to Caddy's upstream list (mode B).
	node.up(t)
	app.env["FLUXCODE_UPSTREAMS"] = "to fluxcode:8080 host.docker.internal:" + node.port(t, "fluxcode", 8080)
	app.writeEnv(t)
	app.up(t, "caddy")
	entry = "http://127.0.0.1:" + app.port(t, "caddy", 80) // a new container, a new port
	// With the entry host's own FluxCode stopped (docker stop, so that compose leaves Caddy
	// alone), only the new node can answer.
	entryNode := strings.TrimSpace(app.compose(t, "ps", "-q", "fluxcode"))
	if out, err := command(t, composeBound, dockerCLI, "stop", entryNode); err != nil {
		t.Fatalf("docker stop the entry host's fluxcode: %v\n%s", err, out)
	}
	second := relayedRequest(t, entry, tn.key, app, node)
	waitBilled(t, entry, admin, tn.userID, []string{first, second}, app, node)
	t.Logf("the whole run took %s", time.Since(began).Round(time.Second))
}

// requireDocker returns the docker CLI, failing with what to install when Docker Engine, its
// compose plugin or debootstrap is missing (.ci/docker installs and starts all of them).
func requireDocker(t *testing.T) string {
	t.Helper()
	const hint = "run `bash .ci/docker` as root: it installs Debian's docker.io and debootstrap, builds the compose plugin and starts dockerd"
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("docker not found; %s", hint)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatalf("debootstrap not found (deploy/local-images.sh needs it); %s", hint)
	}
	if out, err := command(t, time.Minute, docker, "info"); err != nil {
		t.Fatalf("the docker daemon does not answer (%v); %s\n%s", err, hint, testenv.LastLines(out, 10))
	}
	if out, err := command(t, time.Minute, docker, "compose", "version"); err != nil {
		t.Fatalf("docker compose is missing (%v); %s\n%s", err, hint, testenv.LastLines(out, 10))
	}
	return docker
}

// buildLocalImages runs deploy/local-images.sh and returns the image variables it prints.
func buildLocalImages(t *testing.T) map[string]string {
	t.Helper()
	script := testenv.RepoPath(t, "deploy/local-images.sh")
	out, err := command(t, imagesBound, "bash", script)
	if err != nil {
		t.Fatalf("deploy/local-images.sh: %v\n%s", err, testenv.LastLines(out, 40))
	}
	images := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasSuffix(k, "_IMAGE") {
			images[k] = v
		}
	}
	for _, k := range []string{"FLUXCODE_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "CADDY_IMAGE"} {
		if images[k] == "" {
			t.Fatalf("deploy/local-images.sh printed no %s:\n%s", k, testenv.LastLines(out, 20))
		}
	}
	return images
}

// dockerHostAddress is what host.docker.internal (host-gateway) resolves to in the
// containers: the host's address on Docker's default bridge. Asked of a container of image,
// as the compose files' extra_hosts line makes it.
func dockerHostAddress(t *testing.T, docker, image string) string {
	t.Helper()
	out, err := command(t, time.Minute, docker, "run", "--rm", "--add-host", "host.docker.internal:host-gateway",
		"--entrypoint", "getent", image, "hosts", "host.docker.internal")
	fields := strings.Fields(out)
	if err != nil || len(fields) == 0 || net.ParseIP(fields[0]) == nil {
		t.Fatalf("resolve host.docker.internal in a container: %v %q", err, out)
	}
	return fields[0]
}

// command runs a program to completion within bound and returns its output (stdout and
// stderr together).
func command(t *testing.T, bound time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %s", bound)
	}
	return out.String(), err
}

// project is one simulated host: a compose file of deploy/ with its own env file.
type project struct {
	docker, name, envFile string
	files                 []string // deploy/FILE, and the ulimits override when one is needed
	env                   map[string]string
}

func newProject(t *testing.T, docker, name, file, dir string, env map[string]string) *project {
	t.Helper()
	p := &project{docker: docker, name: name, files: []string{deployPath(file)}, envFile: filepath.Join(dir, name+".env"), env: env}
	if override := nofileOverride(t, file, dir); override != "" {
		p.files = append(p.files, override)
	}
	p.writeEnv(t)
	return p
}

// nofileOverride writes, when this machine's hard limit on open files is below what the
// compose file's services ask for (the runtime cannot raise it: sandboxes and CI runners
// often cap it), a compose override that asks for the limit there is; "" when none is needed.
func nofileOverride(t *testing.T, file, dir string) string {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	services, _ := rawCompose(t, file)["services"].(map[string]any)
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(services)) {
		svc, _ := services[name].(map[string]any)
		ulimits, _ := svc["ulimits"].(map[string]any)
		nofile, _ := ulimits["nofile"].(map[string]any)
		if hard, ok := nofile["hard"].(int); ok && uint64(hard) > lim.Max {
			fmt.Fprintf(&b, "  %s:\n    ulimits:\n      nofile: {soft: %d, hard: %d}\n", name, lim.Max, lim.Max)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	path := filepath.Join(dir, strings.TrimSuffix(file, ".yml")+".nofile.yml")
	if err := os.WriteFile(path, []byte("services:\n"+b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: open files limited to %d here (the compose file asks for more)", file, lim.Max)
	return path
}

// writeEnv writes the env file, as an operator's copy of the example.
func (p *project) writeEnv(t *testing.T) {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p.env)) {
		fmt.Fprintf(&b, "%s=%s\n", k, p.env[k])
	}
	if err := os.WriteFile(p.envFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run is "docker compose -p NAME --env-file FILE -f deploy/FILE [-f OVERRIDE] args...".
func (p *project) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	full := []string{"compose", "-p", p.name, "--env-file", p.envFile}
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	return command(t, composeBound, p.docker, full...)
}

// compose runs a compose command that must succeed.
func (p *project) compose(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(t, args...)
	if err != nil {
		t.Fatalf("%s: docker compose %s: %v\n%s\n%s", p.name, strings.Join(args, " "), err, testenv.LastLines(out, 30), p.logs(t))
	}
	return out
}

// up starts the project (or the services named) and waits until every container is healthy.
func (p *project) up(t *testing.T, services ...string) {
	t.Helper()
	p.compose(t, append([]string{"up", "-d", "--no-build", "--wait"}, services...)...)
}

// port is the host port Docker published for a service's container port.
func (p *project) port(t *testing.T, service string, container int) string {
	t.Helper()
	out := strings.TrimSpace(p.compose(t, "port", service, strconv.Itoa(container)))
	_, port, err := net.SplitHostPort(out)
	if err != nil || port == "0" {
		t.Fatalf("%s: the published port of %s:%d: %q", p.name, service, container, out)
	}
	return port
}

func (p *project) down(t *testing.T) {
	t.Helper()
	if out, err := p.run(t, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
		t.Errorf("%s: docker compose down: %v\n%s", p.name, err, testenv.LastLines(out, 20))
	}
}

// logs is the tail of the project's container logs, for a failure message.
func (p *project) logs(t *testing.T) string {
	t.Helper()
	out, _ := p.run(t, "logs", "--no-color", "--tail", "40")
	return "--- logs of " + p.name + " ---\n" + out
}

// relay forwards connections made to hostIP (from the containers) to target on 127.0.0.1,
// where the mock upstream listens; it returns the port it listens on.
func relay(t *testing.T, hostIP, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(hostIP, "0"))
	if err != nil {
		t.Fatalf("relay to the mock upstream: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				// Each direction ends the other: a closed side closes both connections.
				go func() { io.Copy(out, in); out.Close() }()
				io.Copy(in, out)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// retryUntil retries check until it passes, failing with the projects' logs after serveBound.
func retryUntil(t *testing.T, what string, check func() error, projects ...*project) {
	t.Helper()
	deadline := time.Now().Add(serveBound)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var logs []string
			for _, p := range projects {
				logs = append(logs, p.logs(t))
			}
			t.Fatalf("%s: %v\n%s", what, err, strings.Join(logs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func wantStatus(url string, want int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// runTenant is what the test bills against: a user with a balance and an API key of a group
// whose one account is the mock upstream.
type runTenant struct {
	userID int64
	key    string
}

// newRunTenant sets up, through Caddy as an operator would, a group, its account at
// upstream, a user with $10 and the user's API key.
func newRunTenant(t *testing.T, entry, admin, upstream string) runTenant {
	t.Helper()
	api := entry + "/api/v1"
	var g, a, u struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", api+"/admin/groups", admin, map[string]any{
		"name": "compose", "platform": store.PlatformAnthropic,
	}, http.StatusCreated, &g)
	testenv.MustCallJSON(t, "POST", api+"/admin/accounts", admin, map[string]any{
		"name": "mock", "platform": store.PlatformAnthropic, "type": store.AccountTypeAPIKey,
		"credentials": map[string]string{"api_key": "sk-ant-compose-" + secret.NewMasterKey()[:8]},
		"base_url":    upstream, "group_ids": []int64{g.ID},
	}, http.StatusCreated, &a)
	email, password := "compose@deploy.test", secret.NewMasterKey()[:16]
	testenv.MustCallJSON(t, "POST", api+"/admin/users", admin, map[string]any{
		"email": email, "password": password,
	}, http.StatusCreated, &u)
	testenv.MustCallJSON(t, "POST", api+"/admin/users/"+strconv.FormatInt(u.ID, 10)+"/balance", admin,
		map[string]string{"amount": "10", "note": "compose test"}, http.StatusOK, nil)
	var k struct {
		Key string `json:"key"`
	}
	testenv.MustCallJSON(t, "POST", api+"/keys", testenv.Login(t, entry, email, password),
		map[string]any{"name": "compose", "group_id": g.ID}, http.StatusCreated, &k)
	return runTenant{userID: u.ID, key: k.Key}
}

// relayedRequest sends one Anthropic message through Caddy until a node answers it (a node
// Caddy has not yet seen go away may cost a 502 first), and returns its request id.
func relayedRequest(t *testing.T, entry, key string, projects ...*project) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"model": runModel, "max_tokens": 64,
		"messages": []map[string]string{{"role": "user", "content": "hello through compose"}},
	})
	var id string
	retryUntil(t, "a relayed /v1/messages", func() error {
		req, err := http.NewRequest(http.MethodPost, entry+"/v1/messages", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var msg struct {
			Type    string `json:"type"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &msg) != nil || msg.Type != "message" || len(msg.Content) == 0 {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		if id = resp.Header.Get(gateway.HeaderRequestID); id == "" {
			return errors.New("the answer has no " + gateway.HeaderRequestID)
		}
		return nil
	}, projects...)
	return id
}

// waitBilled waits until the admin API shows the user's ledger holding exactly the requests
// ids, each charged (a row is committed just after its answer).
func waitBilled(t *testing.T, entry, admin string, userID int64, ids []string, projects ...*project) {
	t.Helper()
	want := slices.Sorted(slices.Values(ids))
	retryUntil(t, "the ledger", func() error {
		var page struct {
			Items []struct {
				RequestID string `json:"request_id"`
				Charged   string `json:"charged"`
			} `json:"items"`
		}
		testenv.MustCallJSON(t, "GET", entry+"/api/v1/admin/usage?user_id="+strconv.FormatInt(userID, 10), admin, nil, http.StatusOK, &page)
		var got []string
		for _, row := range page.Items {
			got = append(got, row.RequestID)
			if c, err := strconv.ParseFloat(row.Charged, 64); err != nil || c <= 0 {
				return fmt.Errorf("request %s charged %q, want a positive amount", row.RequestID, row.Charged)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("ledger rows %v, want one for each of %v", got, want)
		}
		return nil
	}, projects...)
}
