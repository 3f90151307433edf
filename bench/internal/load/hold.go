package load

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Hold opens n streaming requests at once and keeps reading them. It calls opened once every
// stream has delivered its first body byte (or failed), with the number open, and then keeps
// them open until ctx ends. cfg.System should make the upstream stream slowly for longer than
// the hold (a mock directive such as "mock:events=1200,interval=50ms").
func Hold(ctx context.Context, cfg Config, n int, opened func(open int, firstErr error)) error {
	cfg.Stream = true
	cfg.Concurrency = max(n, 1)
	if cfg.Duration <= 0 {
		cfg.Duration = time.Minute
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	client := NewClient(n)
	defer client.CloseIdleConnections()
	body := cfg.Body()
	target := strings.TrimRight(cfg.URL, "/") + "/v1/messages"

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		pending  = n
		open     int
		firstErr error
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	settle := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil {
			open++
		}
		if pending--; pending == 0 {
			close(done)
		}
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := newRequest(ctx, target, cfg, body)
			if err != nil {
				settle(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				settle(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
				settle(fmt.Errorf("status %d: %s", resp.StatusCode, b))
				return
			}
			buf := make([]byte, 4<<10)
			if _, err := resp.Body.Read(buf); err != nil && err != io.EOF {
				settle(fmt.Errorf("first read: %w", err))
				return
			}
			settle(nil)
			// Keep draining until the hold ends, as a client reading a slow answer does.
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	o, fe := open, firstErr
	mu.Unlock()
	opened(o, fe)
	<-ctx.Done()
	cancel()
	wg.Wait()
	return nil
}
