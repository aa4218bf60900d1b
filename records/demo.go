package records

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// DemoPerson is one fictional person of the built-in demo dataset.
type DemoPerson struct {
	Person
	Illustrates   string // what this person shows, in English
	IllustratesZH string // the same in Chinese
}

// demoBodies are the first 17 digits of the demo ID numbers: real district
// codes and plausible birth dates; the check character is computed, so the
// IDs pass CheckID. The people, phones and employers are invented.
var demoPeople = []struct {
	body, name, phone, region string
	cat                       Category
	employer                  string
	en, zh                    string
}{
	{"11010519880312001", "张三", "13900000011", "北京市朝阳区", Employee, "示例科技有限公司",
		"employee, all five insurances paid, no gaps; two identical pharmacy purchases on one day",
		"职工，五险齐全、无断缴；同一天两笔相同的药店消费"},
	{"31010419910723002", "李四", "13900000022", "上海市徐汇区", Employee, "演示网络有限公司",
		"employee who changed employer: one missing month between jobs (3 months ago, just inside the 3-month window), higher base since",
		"职工，更换单位：两份工作之间缺缴1个月（3个月前，刚好在3个月补缴期内），之后缴费基数提高"},
	{"35010219850115003", "王五", "13900000033", "福建省福州市", Employee, "示例制造有限公司",
		"employee whose employer has not paid the last two months (status unpaid), all five insurances",
		"职工，单位近两个月欠缴（状态为未缴），五险均受影响"},
	{"21020219900508004", "赵六", "13900000044", "辽宁省大连市", Flexible, "",
		"flexible worker with a 5-month break 6 to 10 months ago (longer than 3 months), medical and pension",
		"灵活就业人员，6至10个月前断缴5个月（超过3个月），医疗和养老"},
	{"35020319930920005", "钱七", "13900000055", "福建省厦门市", Flexible, "",
		"flexible worker who missed last month only: a short gap that can be made up; reminder case",
		"灵活就业人员，仅上个月未缴：可补缴的短期断缴；适合演示缴费提醒"},
	{"11010819750630006", "孙八", "13900000066", "北京市海淀区", Resident, "",
		"resident who did not enrol for last year: a long gap outside the back-payment window",
		"城乡居民，去年未参保：超出补缴期的长期断保"},
	{"35010419601111007", "周九", "13900000077", "福建省福州市", Resident, "",
		"resident enrolled every year, this year paid in advance: no gaps",
		"城乡居民，每年按时参保，本年度已预缴：无断保"},
}

// Demo returns the fictional people of the demo dataset (see OpenDemo), with
// what each of them illustrates, for the README and tests.
func Demo() []DemoPerson {
	out := make([]DemoPerson, 0, len(demoPeople))
	for _, d := range demoPeople {
		out = append(out, DemoPerson{
			Person: Person{ID: d.body + string(idCheckChar(d.body)), Name: d.name, Phone: d.phone,
				Region: d.region, Category: d.cat, Employer: d.employer},
			Illustrates: d.en, IllustratesZH: d.zh,
		})
	}
	return out
}

// OpenDemo opens an in-memory database holding the demo dataset, with months
// generated relative to now so that its gaps always look recent. It runs the
// generated CSV through Import, so the demo data passes the same validation as
// real files.
func OpenDemo(ctx context.Context, now time.Time) (*DB, error) {
	sdb, err := sql.Open("sqlite", "file::memory:?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("open demo records: %w", err)
	}
	// An in-memory database lives in its connection: exactly one, kept forever.
	sdb.SetMaxOpenConns(1)
	sdb.SetMaxIdleConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)
	db, err := newDB(ctx, sdb)
	if err != nil {
		return nil, fmt.Errorf("open demo records: %w", err)
	}
	db.now = func() time.Time { return now }
	p, c, a := demoCSV(now)
	if _, err := db.Import(ctx, ImportSources{
		Persons:       &ImportFile{Name: "demo-persons.csv", R: strings.NewReader(p)},
		Contributions: &ImportFile{Name: "demo-contributions.csv", R: strings.NewReader(c)},
		Account:       &ImportFile{Name: "demo-account.csv", R: strings.NewReader(a)},
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open demo records: %w", err)
	}
	return db, nil
}

// employeeRates are illustrative (personal, employer) rates in basis points.
var employeeRates = map[Insurance][2]int64{
	Medical:      {200, 800},
	Pension:      {800, 1600},
	Unemployment: {50, 50},
	Injury:       {0, 40},
	Maternity:    {0, 80},
}

// demoCSV builds the three demo files. History runs 30 months back; the
// current month is never written for contributors who pay monthly, since it
// is not yet due.
func demoCSV(now time.Time) (persons, contribs, account string) {
	cur := MonthOf(now)
	var pb, cb, ab strings.Builder
	pb.WriteString(strings.Join(personsHeader, ",") + "\n")
	cb.WriteString(strings.Join(contributionsHeader, ",") + "\n")
	ab.WriteString(strings.Join(accountHeader, ",") + "\n")
	row := func(id string, m Month, ins Insurance, base, personal, employer Cents, status string) {
		fmt.Fprintf(&cb, "%s,%s,%s,%s,%s,%s,%s\n", id, m, ins, base, personal, employer, status)
	}
	employee := func(id string, m Month, base Cents, status string) {
		for _, ins := range Insurances() {
			r := employeeRates[ins]
			row(id, m, ins, base, base*Cents(r[0])/10000, base*Cents(r[1])/10000, status)
		}
	}
	flexible := func(id string, m Month, base Cents) {
		row(id, m, Medical, base, base*800/10000, 0, StatusPaid)
		row(id, m, Pension, base, base*2000/10000, 0, StatusPaid)
	}
	// Residents pay a yearly premium; it is recorded per month of cover.
	resident := func(id string, year int) {
		for mo := time.January; mo <= time.December; mo++ {
			row(id, Month{year, mo}, Medical, 0, 3200, 0, StatusPaid)
		}
	}
	move := func(id string, m Month, day int, amount Cents, desc string) {
		fmt.Fprintf(&ab, "%s,%s,%s,%s\n", id, time.Date(m.Year, m.Month, day, 0, 0, 0, 0, time.UTC).Format(time.DateOnly), amount, desc)
	}
	credits := func(id string, from Month, amount Cents, skip func(Month) bool) {
		for m := from; m.Before(cur); m = m.Add(1) {
			if skip == nil || !skip(m) {
				move(id, m, 15, amount, "个人账户划入")
			}
		}
	}

	for i, p := range Demo() {
		fmt.Fprintf(&pb, "%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
		id := p.ID
		switch i {
		case 0: // 张三: complete
			for m := cur.Add(-30); m.Before(cur); m = m.Add(1) {
				employee(id, m, 1000000, StatusPaid)
			}
			credits(id, cur.Add(-12), 20000, nil)
			move(id, cur.Add(-2), 20, -3650, "药店购药")
			move(id, cur.Add(-2), 20, -3650, "药店购药")
			move(id, cur.Add(-1), 8, -12000, "门诊个人账户支付")
		case 1: // 李四: employer change with one missing month
			for m := cur.Add(-30); m.Before(cur.Add(-3)); m = m.Add(1) {
				employee(id, m, 800000, StatusPaid)
			}
			for m := cur.Add(-2); m.Before(cur); m = m.Add(1) {
				employee(id, m, 1200000, StatusPaid)
			}
			credits(id, cur.Add(-12), 16000, func(m Month) bool { return m == cur.Add(-3) })
			move(id, cur.Add(-4), 3, -5880, "药店购药")
		case 2: // 王五: employer arrears
			for m := cur.Add(-30); m.Before(cur); m = m.Add(1) {
				status := StatusPaid
				if !m.Before(cur.Add(-2)) {
					status = StatusUnpaid
				}
				employee(id, m, 700000, status)
			}
			credits(id, cur.Add(-12), 14000, func(m Month) bool { return !m.Before(cur.Add(-2)) })
		case 3: // 赵六: long break
			for m := cur.Add(-30); m.Before(cur); m = m.Add(1) {
				if m.Before(cur.Add(-10)) || m.After(cur.Add(-6)) {
					flexible(id, m, 450000)
				}
			}
			move(id, cur.Add(-1), 12, 9000, "个人账户划入")
		case 4: // 钱七: missed last month
			for m := cur.Add(-30); m.Before(cur.Add(-1)); m = m.Add(1) {
				flexible(id, m, 500000)
			}
			credits(id, cur.Add(-6), 10000, func(m Month) bool { return m == cur.Add(-1) })
		case 5: // 孙八: resident, skipped last year
			resident(id, cur.Year-3)
			resident(id, cur.Year-2)
		case 6: // 周九: resident, paid through this year
			for y := cur.Year - 2; y <= cur.Year; y++ {
				resident(id, y)
			}
		}
	}
	return pb.String(), cb.String(), ab.String()
}
