package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// profile runs one more Handoff window of row under the CPU profiler when
// cfg.ProfileDir is set, and writes <row>-cpu.pprof, plus the allocation
// profiles <row>-allocs-base.pprof and <row>-allocs.pprof from before and
// after the window. The window's allocations are the difference:
//
//	go tool pprof -sample_index=alloc_space -base <row>-allocs-base.pprof <row>-allocs.pprof
//
// The profiles cover the whole process: the embedded server, the services
// and the load generator.
func (g *generator) profile(ctx context.Context, row string, handoff func(context.Context) Sample) error {
	if g.cfg.ProfileDir == "" {
		return nil
	}
	dir := g.cfg.ProfileDir
	if err := writeProfile(dir, row+"-allocs-base.pprof", "allocs"); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, row+"-cpu.pprof"))
	if err != nil {
		return fmt.Errorf("create CPU profile: %w", err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("start CPU profile: %w", err)
	}
	s := handoff(ctx)
	pprof.StopCPUProfile()
	fmt.Fprintf(g.cfg.Progress, "%s profiled window: Handoff %s%s\n", row, formatRate(s), errorNote(s))
	if err := f.Close(); err != nil {
		return fmt.Errorf("write CPU profile: %w", err)
	}
	return writeProfile(dir, row+"-allocs.pprof", "allocs")
}

// writeProfile writes the named runtime profile to dir/file.
func writeProfile(dir, file, name string) error {
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		return fmt.Errorf("create %s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	return nil
}
