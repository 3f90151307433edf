package login_test

import "time"

func sleep() { time.Sleep(5 * time.Millisecond) }
