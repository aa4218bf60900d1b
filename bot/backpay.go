package bot

import (
	"context"
	"fmt"
	"slices"

	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// The articles the engine's own replies rest on. Each resolves through the
// law registry, and a test walks every reply for citations that do not.
var (
	// The employer's duty to pay, and the late fee (SIL Arts. 63, 86).
	citeArrears = []faq.Citation{{Law: faq.LawSIL, Article: 63}, {Law: faq.LawSIL, Article: 86}}
	// Complaint, mediation, arbitration and lawsuit (SIL Arts. 4, 82, 83).
	citeComplaint = []faq.Citation{{Law: faq.LawSIL, Article: 4}, {Law: faq.LawSIL, Article: 82}, {Law: faq.LawSIL, Article: 83}}
	// From its effective date, the Medical Security Law adds the right to
	// complain about medical insurance, and the duty to refer a complaint
	// in writing (Art. 42).
	citeComplaintMSL = faq.Citation{Law: faq.LawMSL, Article: 42}
	// From the same day, the date benefits start after enrolment (and so
	// any waiting period) is set by each province (MSL Art. 13 para 3).
	citeBenefitStart = faq.Citation{Law: faq.LawMSL, Article: 13}
	// Only an identity document unless a law requires more (Handling Regs
	// Art. 31).
	citeDocuments = []faq.Citation{{Law: faq.LawHandling, Article: 31}}
)

// complaintCitations are the articles behind "you may complain" on the
// turn's day.
func (t *turn) complaintCitations() []faq.Citation {
	if t.inForce(citeComplaintMSL) {
		return append(slices.Clone(citeComplaint), citeComplaintMSL)
	}
	return citeComplaint
}

// inForce reports whether the law of c is in force on the turn's day.
func (t *turn) inForce(c faq.Citation) bool {
	l, ok := t.e.cfg.FAQ.Law(c.Law)
	return ok && l.StatusOn(t.day) == faq.InForce
}

func runBackpay(ctx context.Context, t *turn, _ string) error {
	p, ok, err := t.person(ctx)
	if !ok {
		return err
	}
	gaps, err := t.e.cfg.Records.Gaps(ctx, p.ID, records.Medical, t.now)
	if err != nil {
		return fmt.Errorf("find gaps: %w", err)
	}
	rule := t.e.cfg.Records.Rule(ctx, p.Region)
	var d doc
	if len(gaps) == 0 {
		d.line(txtf(t.l(
			"✅ %s 的医疗保险记录里没有断缴或欠缴的月份（本月尚未到缴费期，不计入）。",
			"✅ The medical-insurance record of %s has no missed or unpaid months (this month is not due yet and is not counted)."),
			records.MaskID(p.ID)))
		d.line(txt(t.l("以上为记录数据，实际以参保地医保部门系统为准。", "This is what the record shows; the local bureau's system is authoritative.")))
		t.show(&d)
		return nil
	}
	d.line(bold(t.l("医疗保险断缴情况", "Medical insurance gaps")), txtf(t.l("（%s，%s）", " (%s, %s)"), records.MaskID(p.ID), p.Region))
	for i, g := range gaps {
		writeGap(&d, t, p, i+1, g, rule)
	}
	if note := rule.Notes[t.lang]; note != "" {
		d.blank()
		d.line(bold(t.l("当地规定", "Local rule")), txt(t.l("：", ": ")+note))
	}
	d.blank()
	writeSteps(&d, t, p, rule)
	t.show(&d, []Button{btn(t.l("所需材料", "Documents"), "documents:"), btn(t.l("缴费记录", "Records"), "records:")})
	return nil
}

func writeGap(d *doc, t *turn, p records.Person, n int, g records.Gap, rule records.RegionRule) {
	span := gapSpan(g)
	d.blank()
	d.line(boldf(t.l("%d. %s（%d个月）", "%d. %s (%d months)"), n, span, len(g.Months)))
	if len(g.Unpaid) > 0 {
		d.item(txtf(t.l("欠缴（有记录未到账）：%s", "Unpaid (on record, not paid): %s"), monthRanges(g.Unpaid, t)))
	}
	if missing := len(g.Months) - len(g.Unpaid); missing > 0 {
		d.item(txtf(t.l("无缴费记录：%d个月", "No record at all: %d months"), missing))
	}
	if g.Owed > 0 {
		note := t.l("按记录中的金额估算", "estimated from the amounts in your record")
		if g.Estimated {
			note = t.l("部分月份按相邻月份的金额估算", "some months estimated from neighbouring months")
		}
		d.item(txtf(t.l("估计应缴：约 ¥%s（%s，以经办机构核定为准）", "Estimated amount: about ¥%s (%s; the bureau sets the exact sum)"), g.Owed, note))
	}
	if p.Category == records.Resident {
		// Residents pay once a year; the employee back-payment window and
		// waiting periods do not apply to them.
		d.item(txt(t.l(
			"影响：城乡居民医保断保后再参保，一般有3个月固定待遇等待期，每多断保1年再加1个月；补缴断保年份可以缩短等待期（国办发〔2024〕38号，转述自非官方来源；以参保地医保部门规定为准）。",
			"Consequence: after a break, resident insurance usually has a fixed 3-month waiting period plus 1 month for each further year of break; paying for missed years shortens it (State Council Office doc. 2024 No. 38, from secondary sources; your local bureau's rules decide).")))
		if t.inForce(citeBenefitStart) {
			d.item(txt(t.l("法律依据：享受待遇的起始时间由省、自治区、直辖市按照国家规定确定",
				"Legal basis: the date benefits start is set by each province under national rules") +
				t.cite([]faq.Citation{citeBenefitStart}) + t.l("。", ".")))
		}
		return
	}
	switch {
	case rule.BackpayMonths == 0:
		d.item(txt(t.l("补缴期限：记录中的规则未规定期限，请向当地确认。", "Deadline: the rule on file sets none; please confirm locally.")))
	case g.InWindow:
		d.item(txtf(t.l("补缴期限：仍可补缴，最晚约到 %s（地方规定）。", "Deadline: can still be made up, until about %s (local rule)."), g.WindowEnds))
	default:
		d.item(txt(t.l("补缴期限：已超出当地规定的补缴期限，能否补缴请咨询参保地经办机构。",
			"Deadline: past the local back-payment window; ask your local bureau whether it can still be made up.")))
	}
	d.item(txt(consequence(t, len(g.Months), rule)))
}

// gapSpan is "2026-01～2026-05", or one month.
func gapSpan(g records.Gap) string {
	if g.To == g.From {
		return g.From.String()
	}
	return g.From.String() + "～" + g.To.String()
}

// consequence says what a break of n months means under the region's rule:
// the short-break line, then waiting periods where the rule states them.
// It never promises that paying restores benefits for a long break.
func consequence(t *turn, n int, rule records.RegionRule) string {
	long := rule.LongBreakMonths
	switch {
	case long > 0 && n <= long:
		return fmt.Sprintf(t.l(
			"影响：断缴%d个月以内，按时补缴后一般视同连续参保；断缴期间的医疗费用能否报销，以参保地医保部门规定为准。",
			"Consequence: a break of %d months or less, once made up, usually counts as continuous; whether costs during the break are covered is for your local bureau's rules to decide."), long)
	case long > 0 && rule.WaitingMonthsIfBackpaid > 0 && rule.WaitingMonths > 0:
		pct := ""
		if rule.WaitingBenefitPercent > 0 {
			pct = fmt.Sprintf(t.l("，等待期内按%d%%享受待遇", "; benefits are paid at %d%% meanwhile"), rule.WaitingBenefitPercent)
		}
		return fmt.Sprintf(t.l(
			"影响：断缴超过%d个月，按当地规定补缴后有%d个月待遇等待期，不补缴则为%d个月%s（地方规定，以参保地医保部门规定为准）。",
			"Consequence: a break of more than %d months brings a waiting period of %d months if made up, %d months if not%s (local rule; your local bureau's rules decide)."),
			long, rule.WaitingMonthsIfBackpaid, rule.WaitingMonths, pct)
	case long > 0 && rule.WaitingMonths > 0:
		return fmt.Sprintf(t.l(
			"影响：断缴超过%d个月，当地规定可能有最长%d个月的待遇等待期，期间医保报销可能受限（地方规定，以参保地医保部门规定为准）。",
			"Consequence: a break of more than %d months may bring a waiting period of up to %d months with limited benefits (local rule; your local bureau's rules decide)."),
			long, rule.WaitingMonths)
	case long > 0:
		return fmt.Sprintf(t.l(
			"影响：断缴超过%d个月，断缴期间的待遇可能不予支付，请看下方当地规定（以参保地医保部门规定为准）。",
			"Consequence: for a break of more than %d months, benefits for the break may not be paid; see the local rule below (your local bureau's rules decide)."),
			long)
	}
	return t.l("影响：断缴期间发生的医疗费用可能不能报销，请尽快向参保地医保部门确认（以参保地医保部门规定为准）。",
		"Consequence: medical costs during the break may not be covered; check with your local bureau soon (your local bureau's rules decide).")
}

// writeSteps is the step-by-step plan for the person's category.
func writeSteps(d *doc, t *turn, p records.Person, rule records.RegionRule) {
	d.line(bold(t.l("怎么补缴", "How to make it up")))
	var steps []string
	switch p.Category {
	case records.Employee:
		steps = []string{
			t.l("联系单位负责社保的同事（人事/HR），请单位为您办理补缴。单位需提供劳动合同、工资发放记录等证明材料，并出具书面说明。",
				"Ask your employer's social-security staff (HR) to make up the contributions. The employer provides supporting materials (labour contract, wage records) and a written certificate."),
			t.l("按时足额缴费是单位的法定义务；单位欠缴的，征收机构责令限期缴纳，并自欠缴之日起按日加收万分之五的滞纳金",
				"Paying on time is the employer's legal duty; for arrears the collection agency orders payment and adds a late fee of 0.05% a day") +
				t.cite(citeArrears) + t.l("。", "."),
			t.l("单位拒绝办理的，您可以向社保或医保行政部门、征收机构投诉举报，也可以申请劳动争议调解、仲裁或提起诉讼",
				"If the employer refuses, you may complain to the social-insurance or medical-insurance department or the collection agency, or go to labour mediation, arbitration or court") +
				t.cite(t.complaintCitations()) + t.l("。", "."),
		}
	case records.Flexible:
		steps = []string{
			fmt.Sprintf(t.l("带身份证原件和复印件，到您参保地的医保经办窗口（%s）申请补缴，并按要求提交书面申请。",
				"Bring your original ID card and a copy to the medical-insurance window where you are insured (%s) and apply in writing to make up the months."), rule.Office[t.lang]),
			t.l("按窗口核定的金额缴费，之后可在“国家医保服务平台”App查询是否到账。",
				"Pay the amount the window sets; then check in the 国家医保服务平台 app that it has been posted."),
		}
	default:
		steps = []string{
			t.l("城乡居民医保按年度在集中参保期缴费。错过的，按当地规定办理；补缴一般只能缩短待遇等待期，不能追溯报销断缴期间的费用（国办发〔2024〕38号，非官方来源转述）。",
				"Resident medical insurance is paid once a year in the enrolment period. If you missed it, local rules apply; paying for missed years usually shortens the waiting period but does not cover costs from the break (State Council Office doc. 2024 No. 38, from secondary sources)."),
			fmt.Sprintf(t.l("带身份证原件（或户口簿），到户籍地或居住地的乡镇（街道）或医保经办窗口办理（%s）。",
				"Bring your original ID card (or household register) to the township/street office or the medical-insurance window (%s)."), rule.Office[t.lang]),
		}
	}
	for i, s := range steps {
		d.line(txtf("%d. %s", i+1, s))
	}
	last := fmt.Sprintf(t.l("咨询电话：%s。具体以参保地医保部门规定为准。", "Hotline: %s. Your local bureau's rules decide."), rule.Hotline)
	if rule.Example {
		last += t.l("（本地区规则为示例，未经核实。）", " (This region's rule is an example, not verified.)")
	}
	d.line(txt(last))
}

func runDocuments(ctx context.Context, t *turn, _ string) error {
	p, ok, err := t.person(ctx)
	if !ok {
		return err
	}
	rule := t.e.cfg.Records.Rule(ctx, p.Region)
	var d doc
	d.line(bold(t.l("办理补缴需要带的材料", "Documents to bring")), txtf(t.l("（%s）", " (%s)"), p.Region))
	for _, item := range rule.Documents[p.Category][t.lang] {
		d.item(txt(item))
	}
	d.line(txtf(t.l("去哪里办：%s", "Where: %s"), rule.Office[t.lang]))
	d.line(txtf(t.l("咨询电话：%s", "Hotline: %s"), rule.Hotline))
	d.blank()
	last := t.l("经办机构除身份证件外，只能要求法律、法规或国务院决定规定的其他材料",
		"Beyond an identity document, the bureau may only ask for what a law, regulation or State Council decision requires") +
		t.cite(citeDocuments) + t.l("。具体以参保地医保部门规定为准。", ". Your local bureau's rules decide.")
	if rule.Example {
		last += t.l("（本地区规则为示例，未经核实。）", " (This region's rule is an example, not verified.)")
	}
	d.line(txt(last))
	t.show(&d)
	return nil
}
