package cluster

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/jobs"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// jobsEvery is the nodes' JOBS_INTERVAL in this test.
const jobsEvery = time.Second

// maintenanceJobs are the jobs every node runs with JOBS_INTERVAL.
var maintenanceJobs = []string{jobs.LedgerRetentionJob, jobs.SubscriptionExpiryJob, jobs.CoordCleanupJob}

// TestClusterJobs (issue 15, must-show 4): three nodes run the same maintenance jobs; each
// runs on one node at a time, about once per interval across the cluster, does its work on
// the shared state, and moves to another node when its holder is SIGKILLed.
func TestClusterJobs(t *testing.T) {
	c := startConfigured(&cluster{t: t, bin: buildFluxcode(t), nodeEnv: func(*cluster) map[string]string {
		return map[string]string{"JOBS_INTERVAL": jobsEvery.String(), "LEDGER_RETENTION_DAYS": "30"}
	}})
	t.Run("each job runs once per interval across three nodes", c.jobsOncePerInterval)
	t.Run("the jobs expire subscriptions and delete old ledger rows", c.jobsDoTheirWork)
	t.Run("a SIGKILLed holder's job runs again on another node", c.jobsMoveOnKill)
}

// jobRun is a "job ran" line of a node's log, with the node it came from.
type jobRun struct {
	Msg      string    `json:"msg"`
	Job      string    `json:"job"`
	Fence    int64     `json:"fence"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Result   string    `json:"result"`
	node     string
}

// jobRuns are every node's logged runs of job, by start.
func (c *cluster) jobRuns(t testing.TB, job string) []jobRun {
	var out []jobRun
	for _, n := range c.nodes {
		for _, r := range testenv.JSONLines[jobRun](t, n.Output()) {
			if r.Msg == "job ran" && r.Job == job {
				r.node = n.name
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b jobRun) int { return a.Started.Compare(b.Started) })
	return out
}

// waitJobRuns waits until cond holds for job's runs and returns them.
func (c *cluster) waitJobRuns(t *testing.T, job string, what string, cond func([]jobRun) bool) []jobRun {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs := c.jobRuns(t, job)
		if cond(runs) {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not happen within 60s; runs so far: %+v", job, what, runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkOnePerInterval fails when two runs of a job overlap, or when one began less than half
// an interval after the one before (the runner's guarantee across a handover; one holder's
// runs are a whole interval apart): three nodes running the job each would do both.
func checkOnePerInterval(t *testing.T, job string, runs []jobRun) {
	t.Helper()
	for i := 1; i < len(runs); i++ {
		prev, cur := runs[i-1], runs[i]
		if cur.Started.Before(prev.Finished) {
			t.Errorf("%s: the run on %s (started %s) overlaps the run on %s (finished %s)",
				job, cur.node, cur.Started.Format(time.RFC3339Nano), prev.node, prev.Finished.Format(time.RFC3339Nano))
		}
		if gap := cur.Started.Sub(prev.Started); gap < jobsEvery/2 {
			t.Errorf("%s: runs on %s and %s began %s apart, within one interval (%s)", job, prev.node, cur.node, gap, jobsEvery)
		}
		if cur.Fence < prev.Fence {
			t.Errorf("%s: the run on %s has fence %d, below the earlier run's %d", job, cur.node, cur.Fence, prev.Fence)
		}
	}
}

func (c *cluster) jobsOncePerInterval(t *testing.T) {
	const want = 6
	for _, job := range maintenanceJobs {
		runs := c.waitJobRuns(t, job, fmt.Sprintf("%d runs", want), func(r []jobRun) bool { return len(r) >= want })
		checkOnePerInterval(t, job, runs)
		nodes := map[string]int{}
		for _, r := range runs {
			nodes[r.node]++
		}
		t.Logf("%s: %d runs from %s to %s, by node %v", job, len(runs),
			runs[0].Started.Format(time.TimeOnly), runs[len(runs)-1].Started.Format(time.TimeOnly), nodes)
	}
}

// adminJobs is GET /api/v1/admin/jobs through Caddy, by job name.
func (c *cluster) adminJobs(t testing.TB) map[string]jobRunAPI {
	var out struct {
		Items []jobRunAPI `json:"items"`
	}
	testenv.MustCallJSON(t, "GET", c.entry+"/api/v1/admin/jobs", c.admin, nil, http.StatusOK, &out)
	m := map[string]jobRunAPI{}
	for _, r := range out.Items {
		m[r.Name] = r
	}
	return m
}

type jobRunAPI struct {
	Name       string    `json:"name"`
	Node       string    `json:"node"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Result     string    `json:"result"`
	Error      string    `json:"error"`
}

func (c *cluster) jobsDoTheirWork(t *testing.T) {
	ctx := context.Background()
	api := c.entry + "/api/v1"
	tn := c.newTenant(t, "jobs")
	var g struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", api+"/admin/groups", c.admin, map[string]any{
		"name": "group-jobs-sub", "platform": store.PlatformAnthropic, "billing_type": store.BillingSubscription,
	}, http.StatusCreated, &g)
	subs := api + "/admin/users/" + strconv.FormatInt(tn.userID, 10) + "/subscriptions"
	testenv.MustCallJSON(t, "POST", subs, c.admin, map[string]any{
		"group_id": g.ID, "expires_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano),
	}, http.StatusCreated, nil)

	// A ledger row from 40 days ago, beyond LEDGER_RETENTION_DAYS=30, and one from today.
	old, recent := "req_jobs_old_"+strconv.FormatInt(time.Now().UnixNano(), 36), "req_jobs_recent_"+strconv.FormatInt(time.Now().UnixNano(), 36)
	for id, at := range map[string]time.Time{old: time.Now().AddDate(0, 0, -40), recent: time.Now().Add(-time.Hour)} {
		if _, err := c.db.Exec(ctx, `INSERT INTO usage_ledger (request_id, user_id, api_key_id, account_id, group_id, billing_type, created_at)
			VALUES ($1, $2, 0, 0, $3, 'balance', $4)`, id, tn.userID, tn.groupID, at); err != nil {
			t.Fatalf("insert ledger row: %v", err)
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		var list struct {
			Items []struct {
				GroupID int64  `json:"group_id"`
				Status  string `json:"status"`
			} `json:"items"`
		}
		testenv.MustCallJSON(t, "GET", subs, c.admin, nil, http.StatusOK, &list)
		var n int
		if err := c.db.QueryRow(ctx, "SELECT count(*) FROM usage_ledger WHERE request_id = $1", old).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Status == store.StatusExpired && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30s: subscriptions %+v, old ledger row present %v", list.Items, n == 1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var n int
	if err := c.db.QueryRow(ctx, "SELECT count(*) FROM usage_ledger WHERE request_id = $1", recent).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the recent ledger row is gone (%d, %v)", n, err)
	}
	runs := c.adminJobs(t)
	for _, job := range maintenanceJobs {
		r, ok := runs[job]
		if !ok || r.Error != "" || r.Result == "" || r.Node == "" {
			t.Errorf("admin API's last run of %s: %+v (listed %v)", job, r, ok)
		}
	}
}

func (c *cluster) jobsMoveOnKill(t *testing.T) {
	job := jobs.SubscriptionExpiryJob
	runs := c.jobRuns(t, job)
	last := runs[len(runs)-1]
	var holder *node
	for _, n := range c.nodes {
		if n.name == last.node {
			holder = n
		}
	}
	holder.kill(t)
	killed := time.Now()
	t.Logf("%s held %s (fence %d); SIGKILLed", holder.name, job, last.Fence)

	runs = c.waitJobRuns(t, job, "a run on another node after the kill", func(r []jobRun) bool {
		after := 0
		for _, run := range r {
			if run.Started.After(killed) && run.node != holder.name {
				after++
			}
		}
		return after >= 2
	})
	checkOnePerInterval(t, job, runs)
	next := runs[len(runs)-1]
	if next.Fence <= last.Fence {
		t.Fatalf("the new holder %s runs under fence %d, not above the killed holder's %d", next.node, next.Fence, last.Fence)
	}
	if r := c.adminJobs(t)[job]; r.Node == holder.name || r.Error != "" {
		t.Fatalf("admin API's last run of %s after the kill: %+v", job, r)
	}
	t.Logf("%s runs on %s under fence %d, %s after the kill", job, next.node, next.Fence, next.Started.Sub(killed).Round(time.Millisecond))
}
