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
	_, statErr := os.Stat(c.RecordsDB)
	isNew := errors.Is(statErr, os.ErrNotExist)
	db, err := openForImport(ctx, c.RecordsDB, stdout)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.Import(ctx, src)
	if err != nil && isNew {
		// A new file that got nothing would only be refused by serve
		// (no persons): leave none behind.
		db.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(c.RecordsDB + suffix)
		}
	}
	var ie *records.ImportError
	if errors.As(err, &ie) {
		fmt.Fprintf(stdout, "Nothing was imported: %d problem(s) found.\n", len(ie.Problems))
		for _, p := range ie.Problems {
			fmt.Fprintf(stdout, "%s:%d: %s\n", p.File, p.Line, p.Msg)
		}
		return errors.New("import: invalid input, nothing written")
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(stdout, "Imported batch %d: %d persons, %d contributions, %d account movements.\n",
		st.Batch, st.Persons, st.Contributions, st.Movements)
	checkpoint(ctx, db, c.RecordsDB, stdout)
	return nil
}

// openForImport opens (creating, mode 0600) the records file to write and
// says when other users' access to it was removed.
func openForImport(ctx context.Context, path string, stdout io.Writer) (*records.DB, error) {
	db, err := records.OpenForImport(ctx, path)
	if err != nil {
		if errors.Is(err, records.ErrForeign) || errors.Is(err, records.ErrCorrupt) {
			return nil, fmt.Errorf("import: %w; nothing written: RECORDS_DB must name a records file or a new path", err)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	if in := db.Info(); in.Tightened {
		fmt.Fprintf(stdout, "Removed other users' access to %s (it holds personal data); its mode is now %04o.\n", path, in.Mode)
	}
	return db, nil
}

// checkpoint merges the -wal into the records file, so that the file alone
// can be copied to replicas; when a reader holds the -wal, it says so.
func checkpoint(ctx context.Context, db *records.DB, path string, stdout io.Writer) {
	if err := db.Checkpoint(ctx); err != nil {
		fmt.Fprintf(stdout, "Note: %s-wal could not be merged into %s yet (%v). It is merged when the last process using the file closes it; copy %s to replicas only then.\n",
			path, path, err, path)
	}
}

// migrateRecords is `shebao import --migrate`: it applies pending schema
// migrations to an existing records file and never creates one.
func migrateRecords(ctx context.Context, path string, stdout io.Writer) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("import --migrate: records file %s: no such file (--migrate never creates one)", path)
	}
	db, err := openForImport(ctx, path, stdout)
	if err != nil {
		return err
	}
	defer db.Close()
	checkpoint(ctx, db, path, stdout)
	fmt.Fprintf(stdout, "%s is at schema version %d.\n", path, db.Info().Schema)
	return nil
}
