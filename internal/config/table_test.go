package config

import (
	"reflect"
	"testing"
)

// TestEveryFieldHasOneVariable: each variable fills its own field, and every field but
// ConfigFile, the bookkeeping and Gateway is filled by one. A field of Gateway may have a
// variable (the rest keep gateway.Default()).
func TestEveryFieldHasOneVariable(t *testing.T) {
	var c Config
	rv := reflect.ValueOf(&c).Elem()
	want := map[uintptr]string{}
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if f.IsExported() && f.Name != "ConfigFile" && f.Name != "Gateway" {
			want[rv.Field(i).Addr().Pointer()] = f.Name
		}
	}
	optional := map[uintptr]string{}
	gv := rv.FieldByName("Gateway")
	for i := 0; i < gv.NumField(); i++ {
		optional[gv.Field(i).Addr().Pointer()] = "Gateway." + gv.Type().Field(i).Name
	}
	seen := map[uintptr]string{}
	for _, v := range Vars() {
		p := reflect.ValueOf(v.field(&c)).Pointer()
		name, ok := want[p]
		if !ok {
			name, ok = optional[p]
		}
		if !ok {
			t.Errorf("%s fills no exported Config field", v.Name)
			continue
		}
		if other, dup := seen[p]; dup {
			t.Errorf("%s and %s both fill %s", v.Name, other, name)
		}
		seen[p] = v.Name
		if err := v.set(&Config{}, v.Default); err != nil && v.Default != "" {
			t.Errorf("%s: default %q does not parse: %v", v.Name, v.Default, err)
		}
	}
	for p, name := range want {
		if _, ok := seen[p]; !ok {
			t.Errorf("Config.%s has no variable", name)
		}
	}
}
