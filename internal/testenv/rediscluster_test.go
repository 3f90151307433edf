package testenv

import "testing"

// A started cluster has three masters, each serving slots, and answers through any node.
func TestRedisCluster(t *testing.T) {
	rc := StartRedisCluster(t, WithPassword("cluster-pw"))
	masters, err := rc.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != 3 {
		t.Fatalf("masters = %v, want 3", masters)
	}
	for _, m := range masters {
		if got, err := rc.Command(m, "DBSIZE"); err != nil || len(got) != 1 {
			t.Errorf("DBSIZE on %s: %v %v", m, got, err)
		}
	}
}
