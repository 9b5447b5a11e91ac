package cache

import "runtime"

func waitRunnable() { runtime.Gosched() }
