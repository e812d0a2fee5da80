/// Every text in English. Keys are grouped by area; keep the same order in `Catalogue+Danish.swift`.
extension Catalogue {
    static let english: [String: String] = [
        // MARK: common
        "common.yes": "yes",
        "common.no": "no",

        // MARK: municipalities
        "municipality.unknownNotAllowed": "only an anonymous stay may have an unknown home municipality (--municipality unknown)",
        "municipality.required": "the home municipality is required (it receives the notification and pays)",
        "municipality.notFound": "'{typed}' is not a Danish municipality; did you mean {nearest}? (a name or the municipality code, e.g. Køge or 259)",
        "municipality.unknown": "unknown",

        // MARK: times and records that cannot contradict themselves
        "time.inFuture": "{what} cannot be in the future ({time}; it is {now} now); nothing was written",
        "time.beforeStart": "{what} ({time}) cannot be before {start} ({startTime}); nothing was written",
        "time.dayInFuture": "{what} cannot be after today ({date}; today is {today}); nothing was written",
        "time.dayBeforeStart": "{what} ({date}) cannot be before {start} ({startDate}); nothing was written",
        "cpr.bornInFuture": "the CPR number is not valid: its date of birth is in the future (nothing was written)",
        "event.admission": "The admission",
        "event.discharge": "The discharge",
        "event.decision": "The decision",
        "event.notificationSent": "Sending the notification",
        "event.complaintReceived": "Receiving the complaint",
        "event.complaintReviewed": "The reconsideration",
        "event.complaintForwarded": "Forwarding to Ankestyrelsen",
        "event.meeting": "The house meeting",
        "event.theAdmission": "the admission",
        "event.theDecision": "the decision",
        "event.theReview": "the reconsideration",
        "resident.unknownField": "unknown resident field '{field}'; fields are {fields}",

        // MARK: decisions and complaints
        "complaint.houseRules": "decision {decision} was an expulsion for breaking the house rules, which cannot be appealed; the complaint is not recorded",
        "complaint.eligible": "decision {decision} gave her the stay; there is nothing to complain about; the complaint is not recorded",
        "complaint.alreadyOpen": "decision {decision} already has a complaint in progress ({complaint}); nothing was written",
        "complaint.alreadyReviewed": "complaint {complaint} was already reconsidered ({status}); a complaint is reconsidered once",
        "complaint.forwardOnlyMaintained": "complaint {complaint} is {status}: only a complaint whose decision the leader maintained is forwarded to Ankestyrelsen",
        "complaintStatus.received": "received",
        "complaintStatus.upheld": "upheld",
        "complaintStatus.maintained": "maintained",
        "complaintStatus.forwarded": "forwarded",

        // MARK: due
        "due.notificationAdmission": "send admission notification {id} (stay {stay}) to {municipality} (legal deadline {deadline})",
        "due.notificationDischarge": "send discharge notification {id} (stay {stay}) to {municipality} (legal deadline {deadline})",
        "due.reconsider": "the leader reconsiders complaint {id} (stay {stay})",
        "due.forward": "forward complaint {id} to Ankestyrelsen",
        "due.upheld": "complaint {id} was upheld: decision {decision} no longer stands; tell her, and make a new decision (stay {stay}; admit her again if she wants to come back)",
        "due.meeting": "house meeting",
        "due.awaitingDecision": "stay {stay} awaits the leader's eligibility decision",
        "due.awaitingRoom": "stay {stay} awaits a room",
        "municipality.named": "{name} Municipality",
        "municipality.unknownWords": "unknown municipality",

        // MARK: children
        "child.notFound": "stay {stay} has no child called '{child}' (her children: {children})",
        "child.ambiguous": "'{child}' fits more than one child of stay {stay} ({children}); give the whole name or the alias",

        // MARK: amounts
        "amount.invalid": "'{text}' is not an amount in kroner (e.g. 2839, 2839.50 or 2.839,50)",
        "amount.ambiguous": "'{text}' is ambiguous: a thousands separator or decimals? Write e.g. 2839 or 2.839,00",

        // MARK: roles
        "role.unknown": "unknown role '{role}'; roles are {roles}",
        "role.notStaff": "only a leader may record {what}; {author} is not registered as staff (shelter staff add)",
        "role.leaderOnly": "only a leader may record {what}; {author} is {role}",
        "what.review": "a complaint's reconsideration",
        "what.rate": "a daily rate",
        "what.moveOut": "a required move-out",
        "what.addStaff": "adding staff",
        "what.eligibility": "an eligibility decision",
        "what.roles": "changing roles",
        "what.removeStaff": "removing staff",
        "what.meetings": "the house meetings' dates",

        // MARK: column headings
        "col.id": "ID",
        "col.stay": "STAY",
        "col.decision": "DECISION",
        "col.received": "RECEIVED",
        "col.deadline": "DEADLINE",
        "col.status": "STATUS",
        "col.date": "DATE",
        "col.complaints": "COMPLAINTS",
        "col.year": "YEAR",
        "col.dailyRate": "DAILY RATE",
        "col.municipality": "MUNICIPALITY",
        "col.code": "CODE",
        "col.days": "DAYS",
        "col.amount": "AMOUNT",
        "col.selfPayment": "SELF-PAYMENT",
        "col.kind": "KIND",
        "col.due": "DUE",
        "col.legalDeadline": "LEGAL DEADLINE",
        "col.sent": "SENT",
        "col.room": "ROOM",
        "col.resident": "RESIDENT",
        "col.children": "CHILDREN",
        "col.name": "NAME",
        "col.admitted": "ADMITTED",
        "col.role": "ROLE",
        "col.removed": "REMOVED",

        // MARK: words
        "word.anonymous": "anonymous",
        "stayStatus.awaitingRoom": "awaitingRoom",
        "stayStatus.active": "active",
        "stayStatus.discharged": "discharged",
        "stayStatus.merged": "merged",
        "roomStatus.free": "free",
        "roomStatus.occupied": "occupied",
        "roomStatus.outOfService": "outOfService",
        "notificationKind.admission": "admission",
        "notificationKind.discharge": "discharge",

        // MARK: admission
        "admit.done": "admitted: stay {stay}, resident {resident}, {room}",
        "admit.room": "room {room}",
        "admit.awaitingRoom": "awaiting a room",
        "admit.notification": "notification {id} to {municipality} is due by {due} (shelter notifications show {id})",

        // MARK: complaints and decisions (screens)
        "complaint.added": "complaint {id}, deadline {deadline}",
        "complaint.addedLate": "complaint {id}, deadline {deadline} (late)",
        "complaint.upheld": "complaint {id} upheld: the decision no longer stands (shelter due says what the leader must do next)",
        "complaint.maintained": "complaint {id} maintained: forward it to Ankestyrelsen",
        "complaint.forwarded": "complaint {id} forwarded",
        "complaint.late": "late",
        "decisions.none": "no decisions",
        "decision.eligible": "eligible",
        "decision.notEligible": "not eligible: {reason}",
        "decision.moveOut": "required move-out",
        "decision.expelled": "expelled (house rules)",
        "decision.notAppealable": "cannot be appealed",
        "decisionStatus.standing": "standing",
        "decisionStatus.overturned": "overturned",

        // MARK: rates and billing
        "rates.none": "no daily rates are set: shelter rates set YEAR AMOUNT",
        "rates.set": "daily rate {year}: {amount}",
        "billing.noRate": "no daily rate is set for {year}: shelter rates set {year} AMOUNT",
        "billing.none": "no stays in {month}",
        "billing.heading": "Billing {month}, daily rate {rate}",
        "billing.stay": "stay {stay}  {who}",
        "billing.total": "Total",
        "billing.selfPaymentNote": "Self-payment is set and collected by the home municipality; it is shown for information and not deducted from the amount.",

        // MARK: meetings and due
        "meetings.none": "no house meetings ahead",
        "meetings.noneHeld": "no house meetings are recorded as held",
        "meetings.held": "held",
        "meetings.extra": "extra meeting",
        "meetings.recorded": "house meeting {date} recorded",
        "meetings.recordedExtra": "{date} is not a day on the house meetings' schedule; recorded as an extra house meeting",
        "meetings.configured": "house meetings every 14 days from {date}",
        "due.nothing": "nothing due in the next {days} days",
        "due.overdue": "OVERDUE",

        // MARK: settings
        "settings.language": "the language is da or en, not '{value}' (nothing was set)",
        "settings.empty": "{key} cannot be empty (nothing was set)",

        // MARK: admin page and server replicas

    ]
}
