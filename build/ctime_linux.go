package build

import "syscall"

// changeTimeOf is a file's change time (ns).
func changeTimeOf(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
