package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/loyaltyhq/loyalty/engine"
)

// watchRules publishes the rules file whenever it changes on disk.
func watchRules(ctx context.Context, path string, e *engine.Engine, log *slog.Logger) (stop func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return watchFile(ctx, path, log, func() { reloadRules(ctx, abs, path, e, log) })
}

// watchFile calls changed whenever the file at path changes, once its
// writes have settled. It watches the directory rather than the file
// because editors that save by writing a temp file and renaming it
// replace the file's inode, and a watch on the old inode would go quiet;
// so does a file swapped in through a symlink in that directory.
func watchFile(ctx context.Context, path string, log *slog.Logger, changed func()) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Editors write in bursts (truncate, write, chmod, rename); waiting
		// for a quiet moment reads the file once, whole.
		const settle = 100 * time.Millisecond
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Chmod) != 0 {
					timer.Reset(settle)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Error("watching a file", "file", path, "err", err)
			case <-timer.C:
				changed()
			}
		}
	}()
	return func() {
		w.Close()
		<-done
	}, nil
}

// reloadRules publishes the file if it differs from the live rules. A file
// put back to the live text is published too, which changes nothing but
// clears the error its refused text left (GET /v1/rules last_error).
func reloadRules(ctx context.Context, abs, name string, e *engine.Engine, log *slog.Logger) {
	src, err := os.ReadFile(abs)
	if err != nil {
		log.Error("reading the rules file", "file", name, "err", err)
		return
	}
	_, before := e.Program()
	v, err := e.PublishRules(ctx, name, src, engine.RulesByFile, nil)
	if err != nil || v.Version == before.Version {
		return
	}
	log.Info("rules file reloaded", "file", name, "version", v.Version)
}

// saveRules writes published rules to the file atomically (temp file and
// rename), so the watcher and a crash both see either the old or the new
// text, never half.
func saveRules(path string) func([]byte) error {
	return func(src []byte) error {
		tmp, err := os.CreateTemp(filepath.Dir(path), ".rules-*.yaml")
		if err != nil {
			return fmt.Errorf("save rules: %w", err)
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(src); err != nil {
			tmp.Close()
			return fmt.Errorf("save rules: %w", err)
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("save rules: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("save rules: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("save rules: %w", err)
		}
		return nil
	}
}
