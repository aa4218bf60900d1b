package faq

import "strings"

// Some messages need a person before a policy: someone describing an
// acute emergency ("我爸胸口疼得厉害 医保能报吗") must first be told to call
// 120, and someone who writes of ending their life must be met with care
// and pointed to help, not to an article of law. These checks run before
// retrieval on the cleaned message.

// Safety kinds.
const (
	SafetyEmergency = "emergency" // call 120 first; the policy answer follows
	SafetyCrisis    = "crisis"    // no policy answer: care and where to get help now
)

var (
	emergencyWords = []string{"胸口疼", "胸口痛", "胸痛", "心口疼", "喘不上气", "喘不过气", "呼吸困难", "上不来气", "昏迷", "晕倒", "昏倒", "不省人事", "抽搐",
		"大出血", "流血不止", "吐血", "中风", "脑梗", "心梗", "心脏病发", "休克", "没有意识", "没意识了", "叫不醒", "快不行了", "窒息", "噎住", "中毒", "烧伤",
		"胸闷得厉害", "心脏骤停", "不能呼吸", "嘴唇发紫", "口吐白沫", "癫痫发作", "溺水", "过敏性休克", "误服", "吃错药", "喝了农药",
		"煤气中毒", "一氧化碳", "羊水破了", "摔倒了起不来", "没反应了", "没有呼吸", "没呼吸", "心跳停", "喘不动",
		"chest pain", "can't breathe", "cannot breathe", "can not breathe", "not breathing", "unconscious", "passed out", "fainted",
		"collapsed", "seizure", "bleeding heavily", "heavy bleeding", "a stroke", "heart attack", "overdose", "choking", "poisoned",
		"difficulty breathing", "trouble breathing", "struggling to breathe", "short of breath", "shortness of breath", "unresponsive",
		"not responding", "won't wake up", "will not wake up", "drowning", "anaphylactic", "anaphylaxis",
		"swallowed poison", "bleeding a lot", "losing a lot of blood", "water broke", "waters broke", "convulsing", "convulsions", "cardiac arrest"}
	crisisWords = []string{"想死", "不想活", "活不下去", "活着没意思", "自杀", "轻生", "结束生命", "结束自己", "寻死", "跳楼", "割腕", "了结自己", "去死",
		"活够了", "一了百了", "死了算了", "不想再活", "撑不下去了", "想消失",
		"kill myself", "killing myself", "suicide", "suicidal", "end my life", "want to die", "don't want to live", "do not want to live",
		"take my own life", "hurt myself", "self harm", "self-harm", "end it all", "better off dead", "no reason to live",
		"don't want to be alive", "do not want to be alive", "can't go on", "cannot go on"}
)

// safety returns the kind of care a cleaned message needs first, or "".
func safety(text string) string {
	s := strings.ToLower(text)
	for _, w := range crisisWords {
		if strings.Contains(s, w) {
			return SafetyCrisis
		}
	}
	for _, w := range emergencyWords {
		if strings.Contains(s, w) {
			return SafetyEmergency
		}
	}
	return ""
}

// SafetyText is what a message of that kind is told first.
func SafetyText(kind string, lang Lang) string {
	switch {
	case kind == SafetyEmergency && lang == EN:
		return "If this is happening now, call 120 for an ambulance or go to the nearest emergency department straight away. " +
			"Treatment comes first; the insurance questions can wait until afterwards."
	case kind == SafetyEmergency:
		return "如果是正在发生的紧急情况，请立即拨打 120 急救电话，或马上去最近的医院急诊。先救人，医保的事之后再问。"
	case kind == SafetyCrisis && lang == EN:
		return "I'm sorry you are going through this, and I'm glad you wrote. If you might hurt yourself, please call 120 (or 110) now, " +
			"or tell someone near you and stay with them. You can talk to a counsellor at the national mental-health helpline 12356, " +
			"any time. You don't have to face this alone."
	case kind == SafetyCrisis:
		return "听到您这么难受，我很担心您，谢谢您说出来。如果您有伤害自己的想法，请马上拨打 120 或 110，或者告诉身边的人，让他们陪着您。" +
			"也可以随时拨打全国心理援助热线 12356，和专业的人聊一聊。您不是一个人。"
	}
	return ""
}
