package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// printTable writes the figures for people; the JSON holds the same.
func printTable(w io.Writer, r *Results) {
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "loyalty-bench: %d CPUs, %d MiB RAM, %s, load %s, files in %s\n", m.CPUs, m.MemTotalMB, m.GoVersion, m.LoadAvg, m.Dir)
	fmt.Fprintf(w, "%d members, %d lots, %s per load, batch size %d, ceiling's db.Batch delay %s", s.Members, s.Lots, fmtSec(s.DurationSec), s.BatchSize, s.CeilingBatchDelay)
	if s.ServerArgs != "" {
		fmt.Fprintf(w, ", serve %s", s.ServerArgs)
	}
	fmt.Fprintln(w)
	printPeer(w, r)
	if len(r.Purchases) > 0 {
		printMain(w, r)
	}
	printRatios(w, r)
	if r.Postgres != nil {
		printPostgres(w, r)
	}
	if x := r.Startup; x != nil {
		fmt.Fprintf(w, "\nstart-up database: %d members × %d ledger entries, built in %.0fs through the store\n", x.Members, x.Entries, x.BuildSec)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "database\tstart-up s\tRSS started\tpeak RSS after reads\tRSS anon\tRSS file\treads/s\tp99 ms\t")
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%.0f\t%.2f\t\n", mib(x.DBBytes), x.StartupSec, mib(x.MemStarted.RSS), mib(x.MemLoaded.PeakRSS),
			mib(x.MemLoaded.Anon), mib(x.MemLoaded.File), x.LoadReads.PerSec, x.LoadReads.P99ms)
		tw.Flush()
	}
}

// printMain writes the figures of the seeded database's run.
func printMain(w io.Writer, r *Results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "seeding: members %.1fs (%s)", r.Seed.MembersSec, r.Seed.MembersHow)
	if r.Seed.LotsHow != "" {
		fmt.Fprintf(w, "; lots %.1fs", r.Seed.LotsSec)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\ndisk: one 4 KiB page + fdatasync %.2f ms; random 4 KiB pages, 256 per fdatasync: %.0f pages/s\n", r.Disk.FsyncMs, r.Disk.PagesPerSec)
	fmt.Fprintln(w, "\n(1) raw ceiling: durable bbolt db.Batch appends of 200-byte records, same disk")
	fmt.Fprintln(tw, "concurrency\tappends/s\tcommits/s\tappends/commit\t")
	ceiling := map[int]float64{}
	for _, c := range r.Ceiling {
		ceiling[c.Concurrency] = c.AppendsPerSec
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t\n", c.Concurrency, c.AppendsPerSec, c.CommitsPerSec, c.AppendsPerTx)
	}
	tw.Flush()

	fmt.Fprintln(w, "\n(2) POST /v1/purchases over HTTP (1–5 items, half by member_external_id)")
	fmt.Fprintln(tw, "concurrency\tpurchases/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t% of ceiling\tserver cores\tserver CPU µs/purchase\tbench CPU µs/purchase\twritten KiB/purchase\t")
	for _, p := range r.Purchases {
		pct := "-"
		if c := ceiling[p.Concurrency]; c > 0 {
			pct = fmt.Sprintf("%.0f%%", 100*p.PerSec/c)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%.2f\t%.0f\t%.0f\t%.1f\t\n", p.Concurrency, p.PerSec, p.P50ms, p.P99ms, p.P999ms, p.MaxMs, p.Errors, pct, p.ServerCores, p.ServerCPUus, p.BenchCPUus, p.ServerWriteKiB)
	}
	tw.Flush()

	if x := r.Mixed; x != nil {
		fmt.Fprintln(w, "\n(3) GET /v1/members/{id}/balance while purchases run")
		fmt.Fprintf(w, "server: %.2f cores, %.0f µs CPU per request; bench: %.0f µs CPU per request\n", x.Reads.ServerCores, x.Reads.ServerCPUus, x.Reads.BenchCPUus)
		fmt.Fprintln(tw, "load\tconcurrency\tper second\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
		for _, row := range []struct {
			name string
			s    stats
		}{{"balance reads", x.Reads}, {"purchases", x.Purchases}} {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t\n", row.name, row.s.Concurrency, row.s.PerSec, row.s.P50ms, row.s.P99ms, row.s.P999ms, row.s.Errors)
		}
		tw.Flush()
	}

	if x := r.Refused; x != nil {
		fmt.Fprintf(w, "\n(3b) purchases alone and beside clients sending redemptions above the balance (all 422): %.0f%% of the rate alone\n", 100*x.Ratio)
		fmt.Fprintln(tw, "load\tconcurrency\tper second\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
		for _, row := range []struct {
			name string
			s    stats
		}{{"purchases alone", x.Before}, {"purchases beside refusals", x.Beside}, {"refused redemptions", x.Refusals}, {"purchases alone again", x.After}} {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t\n", row.name, row.s.Concurrency, row.s.PerSec, row.s.P50ms, row.s.P99ms, row.s.P999ms, row.s.Errors)
		}
		tw.Flush()
	}

	if x := r.Expire; x != nil {
		fmt.Fprintln(w, "\n(4) expire-points job while purchases run")
		fmt.Fprintln(tw, "lots expired\tseconds\tlots/s\tpurchases/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\t")
		p := x.Purchases
		fmt.Fprintf(tw, "%d\t%.1f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t\n", x.Lots, x.Seconds, float64(x.Lots)/x.Seconds, p.PerSec, p.P50ms, p.P99ms, p.P999ms, p.Errors)
		tw.Flush()
	}

	fmt.Fprintln(w, "\n(5) server")
	sv := r.Server
	fmt.Fprintln(tw, "start-up s\tdatabase\tpeak RSS\tRSS anon\tRSS file\t")
	fmt.Fprintf(tw, "%.2f\t%s\t%s\t%s\t%s\t\n", sv.StartupSec, mib(sv.DBBytes), mib(sv.Mem.PeakRSS), mib(sv.Mem.Anon), mib(sv.Mem.File))
	tw.Flush()
	if sv.Verified != "" {
		fmt.Fprintf(w, "verify: %s\n", strings.ReplaceAll(sv.Verified, "\n", "; "))
	}
}

func fmtSec(s float64) string { return fmt.Sprintf("%gs", s) }
