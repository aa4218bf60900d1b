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
	if *persons == "" && *contribs == "" && *account == "" {
		return errors.New("import: give at least one of --persons, --contributions, --account")
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
	db, err := records.Open(ctx, c.RecordsDB)
	if err != nil {
		return fmt.Errorf("import: open %s: %w", c.RecordsDB, err)
	}
	defer db.Close()
	st, err := db.Import(ctx, src)
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
	return nil
}
