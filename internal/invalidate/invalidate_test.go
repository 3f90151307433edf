package invalidate

import "testing"

func TestParse(t *testing.T) {
	cases := map[string]Message{
		"key:42":     {Key, 42},
		"account:7":  {Account, 7},
		"settings:0": {Settings, 0},
		"":           {Kind: All},
		"garbage":    {Kind: All},
		"key:x":      {Kind: All},
	}
	for in, want := range cases {
		if got := Parse(in); got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", in, got, want)
		}
	}
}
