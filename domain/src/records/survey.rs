//! A questionnaire (问卷调查表): a versioned template of questions (single or multiple choice,
//! a rating from 1 to 5, yes/no, free text), each optionally tied to a policy; paper answers
//! typed in by village; a free-text complaint in an answer becomes a case linked to the response.
//! The tally of answers is part of the folded state, so results are read, not recounted.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Record, RecordError, RecordIndex, record_events};
use crate::error::HistoryError;
use crate::ids::{CaseId, Name, RecordId, Text, Title, UnitId};

/// The most questions a template holds.
pub const MAX_QUESTIONS: usize = 100;
/// The most options a choice question offers.
pub const MAX_OPTIONS: usize = 20;

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// One of the options.
    SingleChoice,
    /// Any of the options (at least one).
    MultipleChoice,
    /// 1 (worst) to 5 (best).
    Rating,
    /// Yes or no.
    YesNo,
    /// Free text.
    FreeText,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its key, unique in the template: 1 to 32 of `a-z`, `0-9`, `_`, `.`, `-`, starting with a
    /// letter or a digit.
    pub key: String,
    /// What is asked.
    pub text: Title,
    /// How it is answered.
    pub kind: QuestionKind,
    /// The options of a choice question (2 to 20), none otherwise.
    pub options: Vec<Name>,
    /// The policy it asks about ("耕地地力保护补贴"), if any.
    pub policy: Option<Title>,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// A single choice: the option.
    Choice(Name),
    /// A multiple choice: the options.
    Choices(Vec<Name>),
    /// A rating, 1 to 5.
    Rating(u8),
    /// Yes or no.
    YesNo(bool),
    /// Free text.
    Text(Text),
}

/// One response (one paper questionnaire typed in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Its id.
    pub id: Uuid,
    /// The village it was answered in.
    pub village: UnitId,
    /// The template version it answers.
    pub template_version: u32,
    /// The answers by question key (unanswered questions are left out).
    pub answers: BTreeMap<String, Answer>,
    /// The case its free-text complaint became (registered in the same transaction).
    pub case: Option<CaseId>,
}

/// `survey.created` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    /// Its title.
    pub title: Title,
    /// Who answers it (村民, 个体户, 学生家长 …).
    pub respondent_type: Name,
    /// The day of the survey.
    pub surveyed_on: NaiveDate,
    /// Where.
    pub place: Name,
    /// Who surveyed.
    pub surveyor: Name,
    /// The campaign it belongs to.
    pub campaign: Option<RecordId>,
    /// The unit that runs it.
    pub unit: UnitId,
    /// The first template's questions.
    pub questions: Vec<Question>,
}

/// `survey.template_revised` v1: a new template version; responses keep the version they
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRevised {
    /// The new version's questions.
    pub questions: Vec<Question>,
}

/// `survey.responses_recorded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesRecorded {
    /// The responses.
    pub responses: Vec<Response>,
}

record_events! {
    /// Every event of a questionnaire.
    SurveyEvent {
        Created(Created) => "survey.created", 1;
        TemplateRevised(TemplateRevised) => "survey.template_revised", 1;
        ResponsesRecorded(ResponsesRecorded) => "survey.responses_recorded", 1;
    }
}

/// The counts of one question in one village.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Responses that answered it.
    pub answered: u32,
    /// By option (choices), by rating (`"1"` … `"5"`), `"yes"` / `"no"`; empty for free text.
    pub counts: BTreeMap<String, u32>,
}

impl Counts {
    fn add(&mut self, answer: &Answer) {
        self.answered += 1;
        let keys: Vec<String> = match answer {
            Answer::Choice(o) => vec![o.as_str().to_owned()],
            Answer::Choices(os) => os.iter().map(|o| o.as_str().to_owned()).collect(),
            Answer::Rating(r) => vec![r.to_string()],
            Answer::YesNo(b) => vec![if *b { "yes" } else { "no" }.to_owned()],
            Answer::Text(_) => Vec::new(),
        };
        for k in keys {
            *self.counts.entry(k).or_default() += 1;
        }
    }

    /// Adds another village's counts.
    pub fn merge(&mut self, other: &Self) {
        self.answered += other.answered;
        for (k, n) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += n;
        }
    }
}

/// The tally of one template version: responses by village, and per question the counts by
/// village.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Responses by village.
    pub responses: BTreeMap<UnitId, u32>,
    /// Per question key, per village.
    pub questions: BTreeMap<String, BTreeMap<UnitId, Counts>>,
}

/// A response whose complaint became a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseCase {
    /// The response.
    pub response: Uuid,
    /// Its village.
    pub village: UnitId,
    /// The case.
    pub case: CaseId,
}

/// A questionnaire as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// Its title.
    pub title: Title,
    /// Who answers it.
    pub respondent_type: Name,
    /// The day of the survey.
    pub surveyed_on: NaiveDate,
    /// Where.
    pub place: Name,
    /// Who surveyed.
    pub surveyor: Name,
    /// The campaign.
    pub campaign: Option<RecordId>,
    /// The unit that runs it.
    pub unit: UnitId,
    /// Every template version, oldest first (version n at index n - 1).
    pub templates: Vec<Vec<Question>>,
    /// The tally per template version (index as `templates`).
    pub tallies: Vec<Tally>,
    /// The responses whose complaint became a case.
    pub cases: Vec<ResponseCase>,
    /// When it was created.
    pub recorded_at: DateTime<Utc>,
}

impl Survey {
    /// The current template version (from 1).
    pub fn template_version(&self) -> u32 {
        u32::try_from(self.templates.len()).unwrap_or(u32::MAX)
    }

    /// A template by version.
    pub fn template(&self, version: u32) -> Option<&[Question]> {
        let i = usize::try_from(version).ok()?.checked_sub(1)?;
        self.templates.get(i).map(Vec::as_slice)
    }

    /// The tally of a template version.
    pub fn tally(&self, version: u32) -> Option<&Tally> {
        let i = usize::try_from(version).ok()?.checked_sub(1)?;
        self.tallies.get(i)
    }

    /// All responses recorded, every version.
    pub fn response_count(&self) -> u32 {
        self.tallies.iter().flat_map(|t| t.responses.values()).sum()
    }
}

/// Whether a text is a question key: 1 to 32 of `a-z`, `0-9`, `_`, `.`, `-`, starting with a
/// letter or a digit.
pub fn is_question_key(key: &str) -> bool {
    let b = key.as_bytes();
    (1..=32).contains(&b.len())
        && b.first().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
}

/// Checks a template.
///
/// # Errors
/// [`RecordError::BadTemplate`].
pub fn check_template(questions: &[Question]) -> Result<(), RecordError> {
    if questions.is_empty() || questions.len() > MAX_QUESTIONS {
        return Err(RecordError::BadTemplate("a template has 1 to 100 questions"));
    }
    let mut keys = std::collections::BTreeSet::new();
    for q in questions {
        if !is_question_key(&q.key) {
            return Err(RecordError::BadTemplate(
                "a question key is 1 to 32 of a-z, 0-9, _, . and -, starting with a letter or digit",
            ));
        }
        if !keys.insert(q.key.as_str()) {
            return Err(RecordError::BadTemplate("two questions have the same key"));
        }
        let choice = matches!(q.kind, QuestionKind::SingleChoice | QuestionKind::MultipleChoice);
        if choice && !(2..=MAX_OPTIONS).contains(&q.options.len()) {
            return Err(RecordError::BadTemplate("a choice question offers 2 to 20 options"));
        }
        if !choice && !q.options.is_empty() {
            return Err(RecordError::BadTemplate("only a choice question has options"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !q.options.iter().all(|o| seen.insert(o.as_str())) {
            return Err(RecordError::BadTemplate("a question offers the same option twice"));
        }
    }
    Ok(())
}

/// Checks one response's answers against its template: every key is a question, every answer
/// is of the question's kind, a choice is one of the options, several choices are distinct
/// options (at least one), a rating is 1 to 5.
///
/// # Errors
/// [`RecordError::BadAnswer`].
pub fn check_answers(template: &[Question], answers: &BTreeMap<String, Answer>) -> Result<(), RecordError> {
    for (key, answer) in answers {
        let bad = |problem| RecordError::BadAnswer { question: key.clone(), problem };
        let q = template.iter().find(|q| &q.key == key).ok_or_else(|| bad("is not a question of this template"))?;
        let offered = |o: &Name| q.options.iter().any(|x| x == o);
        match (q.kind, answer) {
            (QuestionKind::SingleChoice, Answer::Choice(o)) if offered(o) => {}
            (QuestionKind::SingleChoice, Answer::Choice(_)) => return Err(bad("is not one of its options")),
            (QuestionKind::MultipleChoice, Answer::Choices(os)) => {
                let mut seen = std::collections::BTreeSet::new();
                if os.is_empty() || !os.iter().all(|o| offered(o) && seen.insert(o.as_str())) {
                    return Err(bad("must be one or more distinct options of the question"));
                }
            }
            (QuestionKind::Rating, Answer::Rating(r)) if (1..=5).contains(r) => {}
            (QuestionKind::Rating, Answer::Rating(_)) => return Err(bad("must be a rating from 1 to 5")),
            (QuestionKind::YesNo, Answer::YesNo(_)) | (QuestionKind::FreeText, Answer::Text(_)) => {}
            _ => return Err(bad("is not of the question's kind")),
        }
    }
    Ok(())
}

/// Creates a questionnaire.
///
/// # Errors
/// [`RecordError::BadTemplate`].
pub fn create(details: Created) -> Result<Vec<SurveyEvent>, RecordError> {
    check_template(&details.questions)?;
    Ok(vec![SurveyEvent::Created(details)])
}

/// Revises the template: a new version.
///
/// # Errors
/// [`RecordError::BadTemplate`].
pub fn revise(questions: Vec<Question>) -> Result<Vec<SurveyEvent>, RecordError> {
    check_template(&questions)?;
    Ok(vec![SurveyEvent::TemplateRevised(TemplateRevised { questions })])
}

/// Records responses, each checked against the template version it answers.
///
/// # Errors
/// [`RecordError::BadAnswer`] (the first response that fails, named by its index in the
/// question field as `responses[i].question`), or an unknown template version.
pub fn record_responses(survey: &Survey, responses: Vec<Response>) -> Result<Vec<SurveyEvent>, (usize, RecordError)> {
    for (i, r) in responses.iter().enumerate() {
        let t = survey.template(r.template_version).ok_or((
            i,
            RecordError::BadAnswer {
                question: String::new(),
                problem: "answers a template version the survey does not have",
            },
        ))?;
        check_answers(t, &r.answers).map_err(|e| (i, e))?;
    }
    Ok(vec![SurveyEvent::ResponsesRecorded(ResponsesRecorded { responses })])
}

impl Record for Survey {
    const STREAM: &'static str = "survey";
    type Event = SurveyEvent;

    fn apply(state: Option<Self>, id: RecordId, event: &SurveyEvent, at: DateTime<Utc>) -> Result<Self, HistoryError> {
        let mut s = match (state, event) {
            (None, SurveyEvent::Created(e)) => {
                return Ok(Self {
                    id,
                    version: 1,
                    title: e.title.clone(),
                    respondent_type: e.respondent_type.clone(),
                    surveyed_on: e.surveyed_on,
                    place: e.place.clone(),
                    surveyor: e.surveyor.clone(),
                    campaign: e.campaign,
                    unit: e.unit,
                    templates: vec![e.questions.clone()],
                    tallies: vec![Tally::default()],
                    cases: Vec::new(),
                    recorded_at: at,
                });
            }
            (Some(s), e) if !matches!(e, SurveyEvent::Created(_)) => s,
            _ => return Err(HistoryError::NotCreated(Self::STREAM)),
        };
        s.version += 1;
        match event {
            SurveyEvent::Created(_) => {}
            SurveyEvent::TemplateRevised(e) => {
                s.templates.push(e.questions.clone());
                s.tallies.push(Tally::default());
            }
            SurveyEvent::ResponsesRecorded(e) => {
                for r in &e.responses {
                    let Some(i) = usize::try_from(r.template_version).ok().and_then(|v| v.checked_sub(1)) else {
                        continue;
                    };
                    let Some(tally) = s.tallies.get_mut(i) else { continue };
                    *tally.responses.entry(r.village).or_default() += 1;
                    for (key, answer) in &r.answers {
                        tally.questions.entry(key.clone()).or_default().entry(r.village).or_default().add(answer);
                    }
                    if let Some(case) = r.case {
                        s.cases.push(ResponseCase { response: r.id, village: r.village, case });
                    }
                }
            }
        }
        Ok(s)
    }

    fn case_ids(&self) -> Vec<CaseId> {
        self.cases.iter().map(|c| c.case).collect()
    }

    fn index(&self) -> RecordIndex {
        let mut units = vec![self.unit];
        units.extend(self.tallies.iter().flat_map(|t| t.responses.keys().copied()));
        units.sort();
        units.dedup();
        RecordIndex {
            campaign: self.campaign,
            units,
            restricted: false,
            happened_on: Some(self.surveyed_on),
            serials: None,
        }
    }
}
