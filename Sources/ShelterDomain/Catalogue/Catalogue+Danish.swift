/// Every text in Danish. Keys are grouped by area; keep the same order in `Catalogue+English.swift`.
extension Catalogue {
    static let danish: [String: String] = [
        // MARK: common
        "common.yes": "ja",
        "common.no": "nej",

        // MARK: municipalities
        "municipality.unknownNotAllowed": "kun et anonymt ophold kan have en ukendt hjemkommune (--municipality ukendt)",
        "municipality.required": "hjemkommunen skal angives (den får orienteringen og betaler)",
        "municipality.notFound": "'{typed}' er ikke en dansk kommune; mente du {nearest}? (navn eller kommunekode, fx Køge eller 259)",
        "municipality.unknown": "ukendt",

        // MARK: times and records that cannot contradict themselves
        "time.inFuture": "{what} kan ikke ligge i fremtiden ({time}; klokken er {now}); intet er skrevet",
        "time.beforeStart": "{what} ({time}) kan ikke ligge før {start} ({startTime}); intet er skrevet",
        "time.dayInFuture": "{what} kan ikke ligge efter i dag ({date}; i dag er {today}); intet er skrevet",
        "time.dayBeforeStart": "{what} ({date}) kan ikke ligge før {start} ({startDate}); intet er skrevet",
        "cpr.bornInFuture": "CPR-nummeret er ikke gyldigt: fødselsdatoen ligger i fremtiden (intet er skrevet)",
        "event.admission": "Indflytningen",
        "event.discharge": "Fraflytningen",
        "event.decision": "Afgørelsen",
        "event.notificationSent": "Afsendelsen af orienteringen",
        "event.complaintReceived": "Modtagelsen af klagen",
        "event.complaintReviewed": "Genvurderingen",
        "event.complaintForwarded": "Videresendelsen til Ankestyrelsen",
        "event.meeting": "Husmødet",
        "event.theAdmission": "indflytningen",
        "event.theDecision": "afgørelsen",
        "event.theReview": "genvurderingen",
        "resident.unknownField": "ukendt felt '{field}'; felterne er {fields}",

        // MARK: decisions and complaints
        "complaint.houseRules": "afgørelse {decision} var en bortvisning for brud på husordenen, som ikke kan påklages; klagen er ikke registreret",
        "complaint.eligible": "afgørelse {decision} gav hende ophold; der er intet at klage over; klagen er ikke registreret",
        "complaint.alreadyOpen": "afgørelse {decision} har allerede en klage under behandling ({complaint}); intet er skrevet",
        "complaint.alreadyReviewed": "klage {complaint} er allerede genvurderet ({status}); en klage genvurderes én gang",
        "complaint.forwardOnlyMaintained": "klage {complaint} er {status}: kun en klage over en afgørelse, lederen har fastholdt, sendes videre til Ankestyrelsen",
        "complaintStatus.received": "modtaget",
        "complaintStatus.upheld": "givet medhold",
        "complaintStatus.maintained": "fastholdt",
        "complaintStatus.forwarded": "videresendt",

        // MARK: due
        "due.notificationAdmission": "send orientering {id} om indflytning (ophold {stay}) til {municipality} (lovens frist {deadline})",
        "due.notificationDischarge": "send orientering {id} om fraflytning (ophold {stay}) til {municipality} (lovens frist {deadline})",
        "due.reconsider": "lederen genvurderer klage {id} (ophold {stay})",
        "due.forward": "send klage {id} videre til Ankestyrelsen",
        "due.upheld": "klage {id} fik medhold: afgørelse {decision} står ikke længere; fortæl hende det, og træf en ny afgørelse (ophold {stay}; optag hende igen, hvis hun vil tilbage)",
        "due.meeting": "husmøde",
        "due.awaitingDecision": "ophold {stay} venter på lederens afgørelse om målgruppen",
        "due.awaitingRoom": "ophold {stay} venter på et værelse",
        "municipality.named": "{name} Kommune",
        "municipality.unknownWords": "ukendt kommune",

        // MARK: children
        "child.notFound": "ophold {stay} har intet barn, der hedder '{child}' (hendes børn: {children})",
        "child.ambiguous": "'{child}' passer på flere af børnene i ophold {stay} ({children}); skriv hele navnet eller aliaset",

        // MARK: amounts
        "amount.invalid": "'{text}' er ikke et beløb i kroner (fx 2839, 2839,50 eller 2.839,50)",
        "amount.ambiguous": "'{text}' er tvetydigt: tusindtalsskilletegn eller decimaler? Skriv fx 2839 eller 2.839,00",

        // MARK: roles
        "role.unknown": "ukendt rolle '{role}'; rollerne er {roles}",
        "role.notStaff": "kun en leder må registrere {what}; {author} er ikke registreret som medarbejder (shelter staff add)",
        "role.leaderOnly": "kun en leder må registrere {what}; {author} er {role}",
        "what.review": "genvurderingen af en klage",
        "what.rate": "en døgntakst",
        "what.moveOut": "et krav om fraflytning",
        "what.addStaff": "nye medarbejdere",
        "what.eligibility": "en afgørelse om målgruppen",
        "what.roles": "ændrede roller",
        "what.removeStaff": "at en medarbejder fjernes",
        "what.meetings": "husmødernes datoer",

        // MARK: column headings
        "col.id": "ID",
        "col.stay": "OPHOLD",
        "col.decision": "AFGØRELSE",
        "col.received": "MODTAGET",
        "col.deadline": "FRIST",
        "col.status": "STATUS",
        "col.date": "DATO",
        "col.complaints": "KLAGER",
        "col.year": "ÅR",
        "col.dailyRate": "DØGNTAKST",
        "col.municipality": "KOMMUNE",
        "col.code": "KODE",
        "col.days": "DAGE",
        "col.amount": "BELØB",
        "col.selfPayment": "EGENBETALING",
        "col.kind": "ART",
        "col.due": "SENEST",
        "col.legalDeadline": "LOVENS FRIST",
        "col.sent": "SENDT",
        "col.room": "VÆRELSE",
        "col.resident": "BEBOER",
        "col.children": "BØRN",
        "col.name": "NAVN",
        "col.admitted": "INDFLYTTET",
        "col.role": "ROLLE",
        "col.removed": "FJERNET",

        // MARK: words
        "word.anonymous": "anonym",
        "stayStatus.awaitingRoom": "venter på værelse",
        "stayStatus.active": "bor her",
        "stayStatus.discharged": "fraflyttet",
        "stayStatus.merged": "lagt sammen",
        "roomStatus.free": "ledigt",
        "roomStatus.occupied": "optaget",
        "roomStatus.outOfService": "ude af drift",
        "notificationKind.admission": "indflytning",
        "notificationKind.discharge": "fraflytning",

        // MARK: admission
        "admit.done": "optaget: ophold {stay}, beboer {resident}, {room}",
        "admit.room": "værelse {room}",
        "admit.awaitingRoom": "venter på et værelse",
        "admit.notification": "orientering {id} til {municipality} skal sendes senest {due} (shelter notifications show {id})",

        // MARK: complaints and decisions (screens)
        "complaint.added": "klage {id} registreret; fristen er {deadline}",
        "complaint.addedLate": "klage {id} registreret; fristen var {deadline} (for sent)",
        "complaint.upheld": "klage {id} har fået medhold: afgørelsen står ikke længere (shelter due viser, hvad lederen skal gøre)",
        "complaint.maintained": "klage {id}: afgørelsen er fastholdt; send klagen videre til Ankestyrelsen",
        "complaint.forwarded": "klage {id} er sendt videre til Ankestyrelsen",
        "complaint.late": "for sent",
        "decisions.none": "ingen afgørelser",
        "decision.eligible": "i målgruppen",
        "decision.notEligible": "ikke i målgruppen: {reason}",
        "decision.moveOut": "krav om fraflytning",
        "decision.expelled": "bortvist (husordenen)",
        "decision.notAppealable": "kan ikke påklages",
        "decisionStatus.standing": "gælder",
        "decisionStatus.overturned": "omgjort",

        // MARK: rates and billing
        "rates.none": "ingen døgntakster er sat: shelter rates set ÅR BELØB",
        "rates.set": "døgntakst {year}: {amount}",
        "billing.noRate": "der er ingen døgntakst for {year}: shelter rates set {year} BELØB",
        "billing.none": "ingen ophold i {month}",
        "billing.heading": "Afregning {month}, døgntakst {rate}",
        "billing.stay": "ophold {stay}  {who}",
        "billing.total": "I alt",
        "billing.selfPaymentNote": "Egenbetalingen fastsættes og opkræves af hjemkommunen; den er vist til orientering og er ikke trukket fra beløbet.",

        // MARK: meetings and due
        "meetings.none": "ingen kommende husmøder",
        "meetings.noneHeld": "der er ikke registreret nogen afholdte husmøder",
        "meetings.held": "afholdt",
        "meetings.extra": "ekstra møde",
        "meetings.recorded": "husmødet {date} er registreret",
        "meetings.recordedExtra": "{date} er ikke en dag på husmødeplanen; registreret som et ekstra husmøde",
        "meetings.configured": "husmøder hver 14. dag fra {date}",
        "due.nothing": "intet forfalder de næste {days} dage",
        "due.overdue": "OVERSKREDET",

        // MARK: settings
        "settings.language": "sproget er da eller en, ikke '{value}' (intet er sat)",
        "settings.empty": "{key} kan ikke være tom (intet er sat)",

        // MARK: admin page and server replicas

    ]
}
