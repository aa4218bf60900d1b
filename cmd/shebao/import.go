package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shebao/shebao/records"
)

func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	persons := fs.String("persons", "", "persons CSV: id_number,name,phone,region,category,employer")
	contribs := fs.String("contributions", "", "contributions CSV: id_number,month,insurance,base,personal,employer,status")
	account := fs.String("account", "", "account CSV: id_number,date,amount,description")
	migrateOnly := fs.Bool("migrate", false, "only bring an existing RECORDS_DB to this version's schema; import nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("import: unexpected argument %q", fs.Arg(0))
	}
	c, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if c.RecordsDB == "" {
		return errors.New("import: set RECORDS_DB to the SQLite file to import into")
	}
	given := *persons != "" || *contribs != "" || *account != ""
	switch {
	case *migrateOnly && given:
		return errors.New("import: --migrate imports nothing; drop it to import files (an import migrates too)")
	case *migrateOnly:
		return migrateRecords(ctx, c.RecordsDB, stdout)
	case !given:
		return errors.New("import: give at least one of --persons, --contributions, --account (or --migrate)")
	}
	var src records.ImportSources
	for _, f := range []struct {
		path string
		dst  **records.ImportFile
	}{{*persons, &src.Persons}, {*contribs, &src.Contributions}, {*account, &src.Account}} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer fh.Close()
		*f.dst = &records.ImportFile{Name: f.path, R: fh}
	}
	draft, err := openDraft(ctx, c.RecordsDB, stdout)
	if err != nil {
		return err
	}
	defer draft.Discard()
	st, err := draft.Import(ctx, src)
	var ie *records.ImportError
	if errors.As(err, &ie) {
		fmt.Fprintf(stdout, "Nothing was imported: %d problem(s) found.\n", len(ie.Problems))
		for _, p := range ie.Problems {
			fmt.Fprintf(stdout, "%s:%d: %s\n", p.File, p.Line, p.Msg)
		}
		return errors.New("import: invalid input, nothing written")
	}
	if err != nil {
		return fmt.Errorf("import: %w; %s is as it was", err, c.RecordsDB)
	}
	if err := draft.Publish(ctx); err != nil {
		return fmt.Errorf("import: %w; %s is as it was", err, c.RecordsDB)
	}
	fmt.Fprintf(stdout, "Imported batch %d: %d persons, %d contributions, %d account movements.\n",
		st.Batch, st.Persons, st.Contributions, st.Movements)
	fmt.Fprintf(stdout, "Published %s (a new file, renamed into place); a running serve reading it picks it up by itself (see README).\n", c.RecordsDB)
	return nil
}

// openDraft starts the next version of the records file (records.Draft):
// a copy beside it that the import writes, renamed into place only once
// complete. It says when it waits for another import, when other users'
// access was removed, and what else the operator should know.
func openDraft(ctx context.Context, path string, stdout io.Writer) (*records.Draft, error) {
	d, err := records.OpenDraft(ctx, path, func() {
		fmt.Fprintf(stdout, "Waiting for another import into the folder of %s to finish…\n", path)
	})
	if err != nil {
		if errors.Is(err, records.ErrForeign) || errors.Is(err, records.ErrCorrupt) {
			return nil, fmt.Errorf("import: %w; nothing written: RECORDS_DB must name a records file or a new path", err)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	if in := d.Info(); in.Tightened {
		fmt.Fprintf(stdout, "Removed other users' access to %s (it holds personal data); its mode is now %04o.\n", path, in.Mode)
	}
	for _, n := range d.Notes {
		fmt.Fprintf(stdout, "Note: %s.\n", n)
	}
	return d, nil
}

// migrateRecords is `shebao import --migrate`: it publishes a copy of an
// existing records file at this version's schema and never creates one.
func migrateRecords(ctx context.Context, path string, stdout io.Writer) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("import --migrate: records file %s: no such file (--migrate never creates one)", path)
	}
	d, err := openDraft(ctx, path, stdout)
	if err != nil {
		return err
	}
	defer d.Discard()
	schema := d.Info().Schema
	if err := d.Publish(ctx); err != nil {
		return fmt.Errorf("import --migrate: %w; %s is as it was", err, path)
	}
	fmt.Fprintf(stdout, "%s is at schema version %d.\n", path, schema)
	return nil
}
