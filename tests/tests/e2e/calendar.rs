//! Calendars end to end: recurring events expanded across daylight-saving changes,
//! free/busy and conflicts, territory permissions through the record an event hangs
//! on, reminders that follow their event, the iCalendar feed read back with an
//! independent parser (the `ical` crate, not the `icalendar` crate that wrote it), and
//! `.ics` import.

use std::time::Duration;

use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const CREATE_EVENT: &str = r#"mutation($i: CreateEventInput!) {
    createEvent(input: $i) { event { id version icsUid rrule exdates seriesEndsAt }
                             conflicts { user startsAt endsAt } } }"#;

const CALENDAR: &str = r#"query($f: DateTime!, $t: DateTime!, $of: CalendarOf) {
    calendar(from: $f, to: $t, of: $of) {
        occurrences { startsAt endsAt event { id title timeZone } }
        tasks { id title dueAt status } } }"#;

async fn create_event(s: &TestServer, token: &str, input: Value) -> Value {
    let v = s
        .gql(Some(token), CREATE_EVENT, json!({ "i": input }))
        .await;
    data(&v)["createEvent"].clone()
}

fn starts(calendar: &Value) -> Vec<String> {
    calendar["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["startsAt"].as_str().unwrap().to_owned())
        .collect()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Weekly 09:00-09:30 in Berlin from Monday 2027-03-15; Berlin moves to summer time on
/// 2027-03-28, so the UTC start moves from 08:00 to 07:00.
fn weekly_berlin() -> Value {
    json!({
        "kind": "MEETING",
        "title": "Pipeline review",
        "startsAt": "2027-03-15T08:00:00Z",
        "endsAt": "2027-03-15T08:30:00Z",
        "timeZone": "Europe/Berlin",
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4",
        "exdates": ["2027-03-22T08:00:00Z"],
        "remindMinutesBefore": 15,
        "location": "Room 4; Building B, 2nd floor"
    })
}

async fn fetch(s: &TestServer, path: &str) -> (u16, String, String) {
    let r = s
        .http
        .get(format!("{}{}", s.url, path))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, r.text().await.unwrap())
}

fn parse_independently(text: &str) -> ical::parser::ical::component::IcalCalendar {
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = parser
        .next()
        .expect("one calendar")
        .expect("valid iCalendar");
    assert!(parser.next().is_none(), "exactly one VCALENDAR");
    cal
}

fn prop<'a>(
    props: &'a [ical::property::Property],
    name: &str,
) -> Option<&'a ical::property::Property> {
    props.iter().find(|p| p.name == name)
}

fn param(p: &ical::property::Property, name: &str) -> Option<String> {
    p.params
        .as_ref()?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.join(","))
}

#[tokio::test]
async fn recurring_events_keep_local_time_across_dst_and_the_feed_parses_independently() {
    let s = TestServer::start().await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let created = create_event(&s, &rep, weekly_berlin()).await;
    let event = &created["event"];
    assert_eq!(
        event["rrule"], "FREQ=WEEKLY;COUNT=4;BYDAY=MO",
        "stored in canonical form"
    );
    assert_eq!(event["seriesEndsAt"], "2027-04-05T07:30:00+00:00");

    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-03-01T00:00:00Z", "t": "2027-05-01T00:00:00Z" }),
        )
        .await;
    let cal = &data(&v)["calendar"];
    assert_eq!(
        starts(cal),
        vec![
            "2027-03-15T08:00:00+00:00",
            "2027-03-29T07:00:00+00:00",
            "2027-04-05T07:00:00+00:00"
        ],
        "09:00 Berlin before and after the change, the excluded Monday left out"
    );

    // A task with a due date shows in the calendar and the feed.
    let t = s
        .gql(
            Some(&rep),
            r#"mutation { createTask(input: {title: "Send the proposal", dueAt: "2027-03-16T12:00:00Z"}) { id version status } }"#,
            json!({}),
        )
        .await;
    let task = data(&t)["createTask"].clone();
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-03-16T00:00:00Z", "t": "2027-03-17T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        data(&v)["calendar"]["tasks"][0]["title"],
        "Send the proposal"
    );

    // Free/busy shows the three occurrences as busy blocks.
    let v = s
        .gql(
            Some(&rep),
            "query { freeBusy(from: \"2027-03-01T00:00:00Z\", to: \"2027-05-01T00:00:00Z\") { user busy { startsAt endsAt } } }",
            json!({}),
        )
        .await;
    let busy = data(&v)["freeBusy"][0]["busy"].as_array().unwrap().clone();
    assert_eq!(busy.len(), 3);
    assert_eq!(busy[1]["endsAt"], "2027-03-29T07:30:00+00:00");

    // The feed, read by a parser that did not write it.
    let v = s
        .gql(
            Some(&rep),
            "mutation { createCalendarFeed { token path url } }",
            json!({}),
        )
        .await;
    // No public address configured: a path only.
    assert!(data(&v)["createCalendarFeed"]["url"].is_null());
    let path = data(&v)["createCalendarFeed"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, kind, text) = fetch(&s, &path).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/calendar"), "{kind}");
    let feed = parse_independently(&text);
    assert!(
        feed.timezones.iter().any(
            |z| prop(&z.properties, "TZID").and_then(|p| p.value.as_deref())
                == Some("Europe/Berlin")
        ),
        "a VTIMEZONE for Europe/Berlin"
    );
    let ev = feed
        .events
        .iter()
        .find(|e| {
            prop(&e.properties, "SUMMARY").and_then(|p| p.value.as_deref())
                == Some("Pipeline review")
        })
        .expect("the event is in the feed");
    let dtstart = prop(&ev.properties, "DTSTART").unwrap();
    assert_eq!(dtstart.value.as_deref(), Some("20270315T090000"));
    assert_eq!(param(dtstart, "TZID").as_deref(), Some("Europe/Berlin"));
    let rrule = prop(&ev.properties, "RRULE")
        .unwrap()
        .value
        .clone()
        .unwrap();
    for part in ["FREQ=WEEKLY", "BYDAY=MO", "COUNT=4"] {
        assert!(rrule.contains(part), "{rrule}");
    }
    let exdate = prop(&ev.properties, "EXDATE").unwrap();
    assert_eq!(exdate.value.as_deref(), Some("20270322T090000"));
    assert_eq!(
        prop(&ev.properties, "LOCATION").unwrap().value.as_deref(),
        Some("Room 4\\; Building B\\, 2nd floor"),
        "text escaped as RFC 5545 says"
    );
    assert_eq!(ev.alarms.len(), 1, "the 15-minute reminder as VALARM");
    let trigger = prop(&ev.alarms[0].properties, "TRIGGER")
        .unwrap()
        .value
        .clone();
    assert!(
        matches!(trigger.as_deref(), Some("-PT15M" | "-PT900S")),
        "fifteen minutes before: {trigger:?}"
    );
    let todo = feed
        .todos
        .iter()
        .find(|t| {
            prop(&t.properties, "SUMMARY").and_then(|p| p.value.as_deref())
                == Some("Send the proposal")
        })
        .expect("the task as VTODO");
    assert_eq!(
        prop(&todo.properties, "DUE").unwrap().value.as_deref(),
        Some("20270316T120000Z")
    );
    assert_eq!(
        prop(&todo.properties, "STATUS").unwrap().value.as_deref(),
        Some("NEEDS-ACTION")
    );

    // A stale version is refused; done tasks record when.
    let stale = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { updateTask(input: {id: $id, version: 7, status: DONE}) { id } }",
            json!({ "id": task["id"] }),
        )
        .await;
    assert_eq!(error_code(&stale), "CONFLICT");
    let done = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { updateTask(input: {id: $id, version: 1, status: DONE}) { status version completedAt } }",
            json!({ "id": task["id"] }),
        )
        .await;
    assert_eq!(data(&done)["updateTask"]["status"], "DONE");
    assert!(data(&done)["updateTask"]["completedAt"].is_string());
    let (_, _, text) = fetch(&s, &path).await;
    let feed = parse_independently(&text);
    let todo = feed
        .todos
        .iter()
        .find(|t| {
            prop(&t.properties, "SUMMARY").and_then(|p| p.value.as_deref())
                == Some("Send the proposal")
        })
        .unwrap();
    assert_eq!(
        prop(&todo.properties, "STATUS").unwrap().value.as_deref(),
        Some("COMPLETED")
    );

    // A new feed revokes the old URL; revoking ends the new one.
    let v = s
        .gql(
            Some(&rep),
            "mutation { createCalendarFeed { path } }",
            json!({}),
        )
        .await;
    let second = data(&v)["createCalendarFeed"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fetch(&s, &path).await.0, 404);
    assert_eq!(fetch(&s, &second).await.0, 200);
    let v = s
        .gql(Some(&rep), "mutation { revokeCalendarFeed }", json!({}))
        .await;
    assert_eq!(data(&v)["revokeCalendarFeed"], true);
    assert_eq!(fetch(&s, &second).await.0, 404);
    assert_eq!(fetch(&s, "/calendar/cal_guess.ics").await.0, 404);
}

#[tokio::test]
async fn event_reminders_move_with_the_event_and_end_with_it() {
    let s = TestServer::start().await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let colleague = s.user("se@example.com", Role::Rep).await;
    let colleague_id = s.user_id(&colleague).await;
    let start = Utc::now() + chrono::Duration::days(3);
    let start = start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
    let created = create_event(
        &s,
        &rep,
        json!({
            "kind": "DEMO",
            "title": "Demo for Acme",
            "startsAt": start.to_rfc3339(),
            "endsAt": (start + chrono::Duration::hours(1)).to_rfc3339(),
            "timeZone": "America/New_York",
            "attendeeUserIds": [colleague_id],
            "remindMinutesBefore": 30
        }),
    )
    .await;
    let id = created["event"]["id"].as_str().unwrap().to_owned();
    let pending = |token: String| {
        let s = &s;
        async move {
            let v = s
                .gql(
                    Some(&token),
                    "{ reminders(filter: {status: PENDING}) { nodes { dueAt message } } }",
                    json!({}),
                )
                .await;
            data(&v)["reminders"]["nodes"].as_array().unwrap().clone()
        }
    };
    for token in [rep.clone(), colleague.clone()] {
        let list = pending(token).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(
            instant(list[0]["dueAt"].as_str().unwrap()),
            start - chrono::Duration::minutes(30)
        );
        assert!(
            list[0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Demo for Acme at")
        );
    }

    // Moving the event moves the reminders.
    let later = start + chrono::Duration::hours(2);
    let v = s
        .gql(
            Some(&rep),
            "mutation($id: ID!, $s: DateTime!, $e: DateTime!) { updateEvent(input: {id: $id, version: 1, startsAt: $s, endsAt: $e}) { event { version startsAt } } }",
            json!({ "id": id, "s": later.to_rfc3339(), "e": (later + chrono::Duration::hours(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!(data(&v)["updateEvent"]["event"]["version"], 2);
    let list = pending(rep.clone()).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        instant(list[0]["dueAt"].as_str().unwrap()),
        later - chrono::Duration::minutes(30)
    );

    // Stale versions lose nothing.
    let stale = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { updateEvent(input: {id: $id, version: 1, title: \"Lost update\"}) { event { title } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&stale), "CONFLICT");

    // Declining ends the colleague's reminder only.
    let v = s
        .gql(
            Some(&colleague),
            "mutation($id: ID!) { respondToEvent(id: $id, response: DECLINED) { id } }",
            json!({ "id": id }),
        )
        .await;
    data(&v);
    assert!(pending(colleague.clone()).await.is_empty());
    assert_eq!(pending(rep.clone()).await.len(), 1);

    // Cancelling the event cancels the reminder.
    let v = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { cancelEvent(id: $id) { status title } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&v)["cancelEvent"]["status"], "CANCELLED");
    assert!(pending(rep.clone()).await.is_empty());
    let v = s
        .gql(
            Some(&rep),
            "{ reminders(filter: {status: CANCELLED}) { nodes { message } } }",
            json!({}),
        )
        .await;
    // The one left behind by the move, and the one the cancellation ended.
    assert_eq!(data(&v)["reminders"]["nodes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_event_reminder_is_delivered_before_the_event() {
    let s = TestServer::start().await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let mut sub = s
        .subscribe(
            &rep,
            "subscription { reminders { message idempotencyKey } }",
        )
        .await;
    let start = Utc::now() + chrono::Duration::seconds(62);
    create_event(
        &s,
        &rep,
        json!({
            "kind": "CALL",
            "title": "Call with Globex",
            "startsAt": start.to_rfc3339(),
            "endsAt": (start + chrono::Duration::minutes(30)).to_rfc3339(),
            "timeZone": "UTC",
            "remindMinutesBefore": 1
        }),
    )
    .await;
    let got = sub.next(Duration::from_secs(10)).await.expect("a reminder");
    let r = &got["data"]["reminders"];
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("Call with Globex"),
        "{got}"
    );
    assert!(r["idempotencyKey"].as_str().unwrap().starts_with("event:"));
    assert!(Utc::now() < start, "delivered before the call starts");
}

#[tokio::test]
async fn events_follow_the_territory_of_their_record() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let east = s.territory(&admin, "East", None).await;
    let west = s.territory(&admin, "West", None).await;
    let alice = s.user("alice@example.com", Role::Rep).await;
    let bob = s.user("bob@example.com", Role::Rep).await;
    s.grant(&admin, &east, &alice, "EDIT", false).await;
    s.grant(&admin, &west, &bob, "EDIT", false).await;
    let account = s.create_account_in(&admin, "Eastern Gas", &east).await;
    let mut input = weekly_berlin();
    input["subjectId"] = json!(account);
    let created = create_event(&s, &alice, input.clone()).await;
    let id = created["event"]["id"].as_str().unwrap().to_owned();

    // Bob sees neither the event nor the account, cannot attach to it, cannot edit.
    let v = s
        .gql(
            Some(&bob),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let alice_id = s.user_id(&alice).await;
    let v = s
        .gql(
            Some(&bob),
            CALENDAR,
            json!({ "f": "2027-03-01T00:00:00Z", "t": "2027-05-01T00:00:00Z", "of": { "userIds": [alice_id] } }),
        )
        .await;
    assert!(
        data(&v)["calendar"]["occurrences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let v = s.gql(Some(&bob), CREATE_EVENT, json!({ "i": input })).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(error_field(&v), "subjectId");
    let v = s
        .gql(
            Some(&bob),
            "mutation($id: ID!) { updateEvent(input: {id: $id, version: 1, title: \"Mine now\"}) { event { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    // ...but may see that Alice is busy then, and nothing more.
    let v = s
        .gql(
            Some(&bob),
            "query($u: ID!) { freeBusy(from: \"2027-03-01T00:00:00Z\", to: \"2027-05-01T00:00:00Z\", of: {userIds: [$u]}) { busy { startsAt } } }",
            json!({ "u": alice_id }),
        )
        .await;
    assert_eq!(data(&v)["freeBusy"][0]["busy"].as_array().unwrap().len(), 3);

    // A personal event of Bob's that overlaps: conflicts show it, to Bob.
    let mut overlapping = weekly_berlin();
    overlapping["title"] = json!("Dentist");
    overlapping["rrule"] = Value::Null;
    overlapping["exdates"] = json!([]);
    let bob_id = s.user_id(&bob).await;
    let first = create_event(&s, &bob, overlapping.clone()).await;
    assert!(first["conflicts"].as_array().unwrap().is_empty());
    let mut invite = overlapping.clone();
    invite["title"] = json!("Team sync");
    invite["attendeeUserIds"] = json!([bob_id]);
    let second = create_event(&s, &alice, invite).await;
    let conflicts = second["conflicts"].as_array().unwrap();
    assert!(
        conflicts.iter().any(|c| c["user"] == json!(bob_id)),
        "Bob is busy then: {conflicts:?}"
    );
    let v = s
        .gql(
            Some(&bob),
            "{ calendarConflicts(from: \"2027-03-01T00:00:00Z\", to: \"2027-04-01T00:00:00Z\") { first { event { title } } second { event { title } } } }",
            json!({}),
        )
        .await;
    let pairs = data(&v)["calendarConflicts"].as_array().unwrap().clone();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let titles = [
        pairs[0]["first"]["event"]["title"].as_str().unwrap(),
        pairs[0]["second"]["event"]["title"].as_str().unwrap(),
    ];
    assert!(
        titles.contains(&"Dentist") && titles.contains(&"Team sync"),
        "{titles:?}"
    );
}

#[tokio::test]
async fn bad_calendar_input_is_refused_and_nothing_is_written() {
    let s = TestServer::start().await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "endsAt": "2027-03-15T07:00:00Z" }), "endsAt"),
        (json!({ "endsAt": "2027-04-15T07:00:00Z" }), "endsAt"),
        (json!({ "rrule": "FREQ=FORTNIGHTLY" }), "rrule"),
        (json!({ "rrule": "FREQ=MINUTELY" }), "rrule"),
        (
            json!({ "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30" }),
            "rrule",
        ),
        (
            json!({ "rrule": "FREQ=DAILY\nDTSTART:20000101T000000Z" }),
            "rrule",
        ),
        (json!({ "timeZone": "Mars/Olympus_Mons" }), "timeZone"),
        (json!({ "exdates": ["2027-03-22T09:00:00Z"] }), "exdates"),
        (json!({ "title": "x".repeat(201) }), "title"),
        (json!({ "title": "   " }), "title"),
        (json!({ "remindMinutesBefore": -5 }), "remindMinutesBefore"),
        (json!({ "subjectId": "bm90LWFuLWlk" }), "input.subjectId"),
        (
            json!({ "attendeeUserIds": ["VXNlcjo5OTk5"] }),
            "attendeeUserIds[0]",
        ),
    ];
    for (patch, field) in cases {
        let mut input = weekly_berlin();
        for (k, v) in patch.as_object().unwrap() {
            input[k] = v.clone();
        }
        let v = s.gql(Some(&rep), CREATE_EVENT, json!({ "i": input })).await;
        assert_eq!(error_code(&v), "VALIDATION", "{patch}: {v}");
        assert_eq!(error_field(&v), field, "{patch}: {v}");
    }
    // Wrong types never reach the service.
    let mut input = weekly_berlin();
    input["startsAt"] = json!("next tuesday");
    let v = s.gql(Some(&rep), CREATE_EVENT, json!({ "i": input })).await;
    assert_eq!(error_code(&v), "VALIDATION");
    // Ranges are bounded.
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-01-01T00:00:00Z", "t": "2029-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-01-02T00:00:00Z", "t": "2027-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(error_field(&v), "to");

    // Imports: oversize, not iCalendar, a broken component in an otherwise good file.
    let import = |body: Vec<u8>, token: Option<String>| {
        let s = &s;
        async move {
            let mut req = s.http.post(format!("{}/calendar/import", s.url)).body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = import(b"BEGIN:VCALENDAR\r\n".to_vec(), None).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "UNAUTHENTICATED")
    );
    let mut big = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n".to_vec();
    while big.len() < 1024 * 1024 + 10 {
        big.extend_from_slice(
            b"X-FILLER:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    let (status, body) = import(big.clone(), Some(rep.clone())).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 MiB"),
        "{body}"
    );
    big.extend(std::iter::repeat_n(b'a', 200 * 1024));
    let (status, body) = import(big, Some(rep.clone())).await;
    assert_eq!((status, error_code(&body).as_str()), (413, "VALIDATION"));
    let (status, body) = import(b"hello, calendar".to_vec(), Some(rep.clone())).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "VALIDATION"),
        "{body}"
    );
    let half_good = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n\
        BEGIN:VEVENT\r\nUID:good-1\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270301T100000Z\r\nDTEND:20270301T110000Z\r\nSUMMARY:Fine\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:bad-2\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;TZID=Narnia/Cair_Paravel:20270302T100000\r\nDTEND:20270302T110000Z\r\nSUMMARY:Broken\r\nEND:VEVENT\r\n\
        END:VCALENDAR\r\n";
    let (status, body) = import(half_good.as_bytes().to_vec(), Some(rep.clone())).await;
    assert_eq!(status, 400, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("bad-2") && message.contains("Narnia"),
        "{message}"
    );

    // Nothing of all that was stored.
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-01-01T00:00:00Z", "t": "2027-12-31T00:00:00Z" }),
        )
        .await;
    assert!(
        data(&v)["calendar"]["occurrences"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{v}"
    );
}

#[tokio::test]
async fn importing_an_ics_file_twice_updates_instead_of_duplicating() {
    let s = TestServer::start().await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    // Exported the way Google Calendar writes it: a weekly series in New York with one
    // cancelled and one moved occurrence, an all-day event, and a to-do.
    let file = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
BEGIN:VEVENT\r\nDTSTART;TZID=America/New_York:20271102T090000\r\nDTEND;TZID=America/New_York:20271102T093000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=4\r\nEXDATE;TZID=America/New_York:20271109T090000\r\nDTSTAMP:20271001T000000Z\r\n\
UID:standup-42@google.com\r\nSUMMARY:Standup\\, weekly\r\nLOCATION:Zoom\r\nCATEGORIES:CALL\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nDTSTART;TZID=America/New_York:20271117T140000\r\nDTEND;TZID=America/New_York:20271117T143000\r\n\
RECURRENCE-ID;TZID=America/New_York:20271116T090000\r\nDTSTAMP:20271001T000000Z\r\nUID:standup-42@google.com\r\n\
SUMMARY:Standup (moved)\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20271125\r\nDTEND;VALUE=DATE:20271126\r\nDTSTAMP:20271001T000000Z\r\n\
UID:thanksgiving@google.com\r\nSUMMARY:Office closed\r\nEND:VEVENT\r\n\
BEGIN:VTODO\r\nUID:todo-1@example.com\r\nDTSTAMP:20271001T000000Z\r\nSUMMARY:Renew contract\r\nDUE:20271120T170000Z\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\n\
END:VCALENDAR\r\n";
    let post = |token: &str| {
        s.http
            .post(format!(
                "{}/calendar/import?timeZone=America/New_York",
                s.url
            ))
            .bearer_auth(token)
            .body(file)
            .send()
    };
    let r = post(&rep).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        report,
        json!({ "eventsCreated": 3, "eventsUpdated": 0, "tasksCreated": 1, "tasksUpdated": 0 })
    );
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-11-01T00:00:00Z", "t": "2027-12-01T00:00:00Z" }),
        )
        .await;
    let cal = &data(&v)["calendar"];
    // New York leaves daylight time on 2027-11-07: 09:00 is 13:00Z before, 14:00Z after.
    assert_eq!(
        starts(cal),
        vec![
            "2027-11-02T13:00:00+00:00",
            "2027-11-17T19:00:00+00:00",
            "2027-11-23T14:00:00+00:00",
            "2027-11-25T05:00:00+00:00"
        ],
        "{cal}"
    );
    assert_eq!(cal["occurrences"][0]["event"]["title"], "Standup, weekly");
    assert_eq!(cal["occurrences"][1]["event"]["title"], "Standup (moved)");
    assert_eq!(cal["tasks"][0]["title"], "Renew contract");

    let r = post(&rep).await.unwrap();
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        report,
        json!({ "eventsCreated": 0, "eventsUpdated": 3, "tasksCreated": 0, "tasksUpdated": 1 })
    );
    let v = s
        .gql(
            Some(&rep),
            CALENDAR,
            json!({ "f": "2027-11-01T00:00:00Z", "t": "2027-12-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(starts(&data(&v)["calendar"]).len(), 4, "no duplicates");

    // The same file through GraphQL, for another user, lands in their calendar only.
    let other = s.user("other@example.com", Role::Rep).await;
    let v = s
        .gql(
            Some(&other),
            "mutation($f: String!) { importCalendar(ics: $f, timeZone: \"America/New_York\") { eventsCreated tasksCreated } }",
            json!({ "f": file }),
        )
        .await;
    assert_eq!(data(&v)["importCalendar"]["eventsCreated"], 3);
}

/// With `ACCORD_PUBLIC_URL` set (behind a proxy, under a path), the feed comes as the
/// whole address a calendar app subscribes to, and that address's path is served.
#[tokio::test]
async fn the_feed_url_is_absolute_when_the_public_address_is_known() {
    let s = TestServer::start_with(accord::config::Limits {
        public_url: Some("https://crm.example.com/accord/".into()),
        ..accord::config::Limits::default()
    })
    .await;
    let token = s.admin().await;
    let v = s
        .gql(
            Some(&token),
            "mutation { createCalendarFeed { path url } }",
            json!({}),
        )
        .await;
    let feed = &data(&v)["createCalendarFeed"];
    let path = feed["path"].as_str().unwrap();
    assert!(
        path.starts_with("/calendar/cal_") && path.ends_with(".ics"),
        "{path}"
    );
    assert_eq!(
        feed["url"].as_str().unwrap(),
        format!("https://crm.example.com/accord{path}")
    );
    let (status, kind, text) = fetch(&s, path).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/calendar"), "{kind}");
    assert!(text.starts_with("BEGIN:VCALENDAR"));
}
