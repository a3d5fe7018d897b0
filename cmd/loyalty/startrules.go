package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// startRules makes a program live at start. The database keeps every
// version of the rules and the file is where they are edited, so when
// they differ the one changed last wins:
//
//   - a database without rules takes the file, or the shipped example when
//     the file does not exist and its path was defaulted;
//   - a missing file is written from the database's latest version, which
//     stays live (a restored backup keeps its program);
//   - a file that differs from that version is published only if it was
//     modified after the version went live, and if it passes its trial;
//     otherwise the database's version stays live.
//
// The log says which won and why.
//
// On PostgreSQL the database is the rules' source of truth, shared by
// every server: without --rules the file is only read to seed an empty
// database (the shipped example when there is no file, which is then not
// written), and never watched or written (startRulesFromDB); a --rules
// given explicitly is handled as above.
func (m *Main) startRules(ctx context.Context) (*rules.Program, error) {
	if !m.rulesFileWatched() {
		return m.startRulesFromDB(ctx)
	}
	path, log, e := m.Config.RulesPath, m.Logger, m.Engine
	latest, err := e.LatestRules(ctx)
	if err != nil {
		return nil, err
	}
	if latest == nil {
		src, err := readRules(path, m.Config.RulesDefaulted, log)
		if err != nil {
			return nil, err
		}
		prog, err := engine.TryRules(ctx, path, src, e.Now(), nil)
		if err != nil {
			return nil, fmt.Errorf("rules are not valid:\n%w", err)
		}
		if _, err := e.LoadRules(ctx, prog, engine.RulesByFile); err != nil {
			return nil, err
		}
		return prog, nil
	}

	stored, err := rules.Parse(fmt.Sprintf("version %d", latest.Version), []byte(latest.Source))
	if err != nil {
		return nil, fmt.Errorf("the database's rules (version %d) no longer compile:\n%w", latest.Version, err)
	}
	keep := func() (*rules.Program, error) {
		if _, err := e.LoadRules(ctx, stored, latest.By); err != nil {
			return nil, err
		}
		return stored, nil
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := saveRules(path)([]byte(latest.Source)); err != nil {
			return nil, err
		}
		log.Info("the rules file was missing: wrote it from the database, whose rules stay live",
			"file", path, "version", latest.Version, "loaded_at", latest.LoadedAt)
		return keep()
	case err != nil:
		return nil, err
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if rules.HashOf(src) == latest.Hash {
		return keep()
	}
	if !info.ModTime().After(latest.LoadedAt) {
		log.Warn("the rules file differs from the database's rules but was modified before they went live, so they stay live; save the file again to publish it",
			"file", path, "modified", info.ModTime().UTC(), "version", latest.Version, "loaded_at", latest.LoadedAt)
		return keep()
	}
	v, err := e.PublishRules(ctx, path, src, engine.RulesByFile, nil)
	if err != nil {
		log.Error("the rules file was modified after the database's rules went live, but it is refused, so they stay live",
			"file", path, "version", latest.Version, "err", err)
		return keep()
	}
	log.Info("the rules file was modified after the database's rules went live: published it",
		"file", path, "modified", info.ModTime().UTC(), "replaced", latest.Version, "version", v.Version)
	prog, _ := e.Program()
	return prog, nil
}

// rulesFileWatched tells whether the rules file is watched, and written
// when rules are published: always on bbolt, and on PostgreSQL when
// --rules was given.
func (m *Main) rulesFileWatched() bool { return !m.sharedDB() || !m.Config.RulesDefaulted }

// startRulesFromDB makes the database's latest rules live, seeding an
// empty database from the rules file if there is one, else from the
// shipped example.
func (m *Main) startRulesFromDB(ctx context.Context) (*rules.Program, error) {
	path, log, e := m.Config.RulesPath, m.Logger, m.Engine
	latest, err := e.LatestRules(ctx)
	if err != nil {
		return nil, err
	}
	if latest != nil {
		prog, err := rules.Parse(fmt.Sprintf("version %d", latest.Version), []byte(latest.Source))
		if err != nil {
			return nil, fmt.Errorf("the database's rules (version %d) no longer compile:\n%w", latest.Version, err)
		}
		if _, err := e.LoadRules(ctx, prog, latest.By); err != nil {
			return nil, err
		}
		return prog, nil
	}
	src, err := os.ReadFile(path)
	from := path
	switch {
	case errors.Is(err, fs.ErrNotExist):
		src, from = rules.Example, "the shipped example"
	case err != nil:
		return nil, err
	}
	prog, err := engine.TryRules(ctx, path, src, e.Now(), nil)
	if err != nil {
		return nil, fmt.Errorf("rules are not valid:\n%w", err)
	}
	if _, err := e.LoadRules(ctx, prog, "file"); err != nil {
		return nil, err
	}
	log.Info("the database had no rules: seeded them", "from", from)
	return prog, nil
}
