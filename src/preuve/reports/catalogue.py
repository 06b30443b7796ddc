"""Every sentence of the attestation, in French and in English.

One table, ``key -> (fr, en)``, so that a missing translation is a test failure and not a blank on a client's
document. Sentences take named ``{placeholders}``; both languages of a key must use the same ones (tested).
Vocabularies that come from data (verdicts, failure classes, rule names, recommendation codes) have their own
tables, each with an honest fallback: a code this version does not know is shown as it is, said to be unknown.
"""

from __future__ import annotations

import string

from preuve.reports.formats import Lang

MESSAGES: dict[str, tuple[str, str]] = {
    # --- page ---------------------------------------------------------------------------------------------------
    "title": ("Attestation de continuité", "Continuity attestation"),
    "issued": (
        "Émise le {date} · version {version} · plan de continuité « {policy} »",
        "Issued {date} · version {version} · continuity plan “{policy}”",
    ),
    "period": ("Période : du {start} au {end} inclus (UTC)", "Period: {start} to {end} inclusive (UTC)"),
    "footer": (
        "Attestation {client} · {month} · version {version}",
        "Attestation {client} · {month} · version {version}",
    ),
    "page": ("page", "page"),
    "generated": (
        "Document établi automatiquement par Preuve à partir du registre infalsifiable des résultats de tests.",
        "Document produced by Preuve from the tamper-evident ledger of test results.",
    ),
    "unknown": ("inconnu", "unknown"),
    "none": ("aucun", "none"),
    "all_targets": ("toutes les sauvegardes", "all backups"),
    # --- headline -----------------------------------------------------------------------------------------------
    "glance": ("En bref", "At a glance"),
    "q_restorable": (
        "Vos sauvegardes ont-elles été restaurées avec succès lors de tests ce mois-ci ?",
        "Were your backups proven restorable by test restores this month?",
    ),
    "q_plan": ("Votre plan de continuité a-t-il été respecté ?", "Was your continuity plan met?"),
    "restorable.yes": (
        "Chaque sauvegarde a été restaurée avec succès lors d'au moins un test ce mois-ci.",
        "Every backup was successfully restored in at least one test this month.",
    ),
    "restorable.partly": (
        "Certaines sauvegardes ont été restaurées avec succès, d'autres non : voir le détail ci-dessous.",
        "Some backups were successfully restored, others were not: see the details below.",
    ),
    "restorable.no": (
        "Aucune sauvegarde n'a été restaurée avec succès lors d'un test ce mois-ci.",
        "No backup was successfully restored in a test this month.",
    ),
    "restorable.unknown": (
        "Les données du mois ne permettent pas de le dire.",
        "This month's data does not allow us to say.",
    ),
    "plan.met": ("Toutes les règles de votre plan ont été respectées.", "Every rule of your plan was met."),
    "plan.partly": (
        "Certaines règles de votre plan n'ont pas été respectées ou n'ont pas pu être vérifiées.",
        "Some rules of your plan were not met or could not be checked.",
    ),
    "plan.not-met": ("Les règles de votre plan n'ont pas été respectées.", "The rules of your plan were not met."),
    "plan.unknown": (
        "Les données du mois ne permettent pas de le dire.",
        "This month's data does not allow us to say.",
    ),
    "rule_counts": (
        "Règles respectées : {met} · non respectées : {violated} · inconnues : {unknown} (sur {total}).",
        "Rules met: {met} · not met: {violated} · unknown: {unknown} (of {total}).",
    ),
    "tested_counts": (
        "Sauvegardes testées avec succès ce mois-ci : {tested} sur {total}.",
        "Backups successfully tested this month: {tested} of {total}.",
    ),
    # --- targets ------------------------------------------------------------------------------------------------
    "targets": ("Vos sauvegardes", "Your backups"),
    "no_targets": ("Aucune sauvegarde n'est décrite pour ce mois.", "No backup is described for this month."),
    "th.backup": ("Sauvegarde", "Backup"),
    "th.where": ("Lieu et support", "Site and medium"),
    "th.tested": ("Testée ce mois-ci", "Tested this month"),
    "th.drills": ("Tests réussis / échoués", "Drills passed / failed"),
    "th.rpo": ("Fraîcheur (RPO)", "Freshness (RPO)"),
    "th.rto": ("Reprise (RTO)", "Recovery (RTO)"),
    "tested.yes": ("Oui, le {date}", "Yes, on {date}"),
    "tested.no": ("Non : aucun test réussi", "No: no passing drill"),
    "where": ("{location}, {media}", "{location}, {media}"),
    "d.drills": ("Tests de restauration", "Restore drills"),
    "d.drills_value": (
        "réussis : {passed} · échoués : {failed} · n'ont pas pu aboutir : {errors}",
        "passed: {passed} · failed: {failed} · could not complete: {errors}",
    ),
    "d.by_kind": ("Par type", "By kind"),
    "d.verified": ("Données vérifiées", "Data verified"),
    "d.verified_value": ("{files} fichiers, {bytes}", "{files} files, {bytes}"),
    "d.last_passed": ("Dernier test réussi", "Last passing drill"),
    "d.last_passed_value": (
        "{when} (test n° {drill}, {kind}, instantané {snapshot})",
        "{when} (drill #{drill}, {kind}, snapshot {snapshot})",
    ),
    "d.last_passed_none": ("aucun ce mois-ci", "none this month"),
    "d.rpo": ("Fraîcheur des sauvegardes (objectif RPO : {threshold})", "Backup freshness (RPO target: {threshold})"),
    "d.rpo_value": (
        "dans l'objectif {compliance} du temps · plus long écart : {gap} · âge de la plus récente en fin de mois : {age}",
        "within target {compliance} of the time · longest gap: {gap} · age of the newest one at month end: {age}",
    ),
    "d.rpo_unknown": ("aucune mesure de fraîcheur ce mois-ci", "no freshness measurement this month"),
    "d.rto": ("Restauration complète (objectif RTO : {threshold})", "Full restore (RTO target: {threshold})"),
    "d.rto_value": ("durée estimée : {estimate}", "estimated time: {estimate}"),
    "d.rto_confirmed": (
        "confirmée par une restauration complète le {when} ({duration}, test n° {drill})",
        "confirmed by a full restore on {when} ({duration}, drill #{drill})",
    ),
    "d.rto_unconfirmed": (
        "jamais confirmée par une restauration complète",
        "never confirmed by a full restore",
    ),
    "d.integrity": ("Contrôle d'intégrité", "Integrity checks"),
    "d.integrity_value": (
        "{coverage} des données relues (objectif : {threshold})",
        "{coverage} of the data read back (target: {threshold})",
    ),
    "d.integrity_unknown": (
        "aucune relecture mesurée ce mois-ci (objectif : {threshold})",
        "no read-back measured this month (target: {threshold})",
    ),
    "d.immutability": ("Protection contre l'effacement", "Protection against deletion"),
    "immutability.on": (
        "Object Lock actif, mode {mode}, conservation {days} jours",
        "Object Lock on, {mode} mode, {days}-day retention",
    ),
    "immutability.off": ("pas d'Object Lock", "no Object Lock"),
    "immutability.required": ("exigée par le plan", "required by the plan"),
    "immutability.optional": ("non exigée par le plan", "not required by the plan"),
    "d.status": ("Verdict", "Verdict"),
    "chart.caption": (
        "Âge de la sauvegarde la plus récente au fil du mois, comparé à l'objectif RPO ({rpo})",
        "Age of the newest backup through the month, against the RPO target ({rpo})",
    ),
    "chart.age": ("âge de la plus récente", "age of the newest"),
    "chart.rpo": ("objectif RPO", "RPO target"),
    "chart.no_data": (
        "Aucune mesure de fraîcheur ce mois-ci : inconnu.",
        "No freshness measurement this month: unknown.",
    ),
    # --- incidents ----------------------------------------------------------------------------------------------
    "incidents": ("Incidents du mois", "Incidents this month"),
    "no_incidents": ("Aucun incident n'a été enregistré ce mois-ci.", "No incident was recorded this month."),
    "incident.title": ("{what} : {target}", "{what}: {target}"),
    "incident.detected": ("Détecté le {when} (test n° {drill})", "Detected on {when} (drill #{drill})"),
    "incident.resolved": ("Résolu le {when} (test n° {drill})", "Resolved on {when} (drill #{drill})"),
    "incident.open": ("Non résolu à la fin du mois", "Not resolved by the end of the month"),
    "incident.message": ("Message technique : {message}", "Technical message: {message}"),
    "incident.note": ("Note de {by}, {when} :", "Note by {by}, {when}:"),
    # --- rules --------------------------------------------------------------------------------------------------
    "rules": ("Règles du plan de continuité", "Continuity-plan rules"),
    "no_rules": (
        "Aucune règle n'a été évaluée pour ce mois : leur respect est inconnu.",
        "No rule was evaluated for this month: whether they were met is unknown.",
    ),
    "th.rule": ("Règle", "Rule"),
    "th.verdict": ("Verdict", "Verdict"),
    "th.measured": ("Mesuré", "Measured"),
    "th.threshold": ("Objectif", "Target"),
    "th.references": ("Références", "References"),
    "reason": ("Détail (tel que noté par le moteur de règles) : {reason}", "Detail: {reason}"),
    # --- recommendations ----------------------------------------------------------------------------------------
    "recommendations": ("Recommandations", "Recommendations"),
    "no_recommendations": (
        "Aucune recommandation : rien n'est en défaut ni inconnu.",
        "No recommendation: nothing is failing or unknown.",
    ),
    # --- verification -------------------------------------------------------------------------------------------
    "verify": ("Comment vérifier ce document", "How to verify this document"),
    "verify.intro": (
        "Ce document est signé deux fois : le PDF porte la signature électronique (PAdES) du prestataire, et un "
        "relevé signé, le fichier {statement}, contient l'empreinte SHA-256 de ce PDF et toutes les données "
        "ci-dessus. La vérification se fait hors ligne, sans accès à la base de données du prestataire.",
        "This document is signed twice: the PDF carries the provider's electronic signature (PAdES), and a signed "
        "statement, the file {statement}, holds this PDF's SHA-256 digest and all the data above. Verification "
        "works offline, without access to the provider's database.",
    ),
    "verify.how": (
        "Placez le PDF et le relevé dans un même dossier avec la clé publique du prestataire, puis lancez :",
        "Put the PDF and the statement in one folder with the provider's public key, then run:",
    ),
    "verify.keyid": (
        "Empreinte de la clé de signature (Ed25519, SHA-256)",
        "Signing key fingerprint (Ed25519, SHA-256)",
    ),
    "verify.cert": ("Empreinte du certificat du PDF (SHA-256)", "PDF certificate fingerprint (SHA-256)"),
    "verify.ledger": (
        "Registre : {entries} entrées ce mois-ci ; tête de chaîne n° {seq}, empreinte {head}. Un auditeur peut "
        "contrôler l'export du registre avec l'option --ledger.",
        "Ledger: {entries} entries this month; chain head #{seq}, hash {head}. An auditor can check the ledger "
        "export with the --ledger option.",
    ),
    "verify.confirm": (
        "Confirmez ces empreintes auprès de votre prestataire par un autre moyen (contrat, téléphone).",
        "Confirm these fingerprints with your provider through another channel (contract, phone).",
    ),
    # --- e-mail -------------------------------------------------------------------------------------------------
    "mail.subject": (
        "Attestation de continuité {month} : {client}",
        "Continuity attestation {month}: {client}",
    ),
    "mail.body": (
        "Bonjour,\n\nVous trouverez ci-joint l'attestation de continuité de {client} pour {month} (PDF signé) et son "
        "relevé signé ({statement}).\n\n{q_restorable}\n{restorable}\n\n{q_plan}\n{plan}\n\nPour vérifier "
        "l'attestation hors ligne :\n  preuve verify {pdf} --key CLE_PUBLIQUE.pem\nEmpreinte de la clé de "
        "signature : {keyid}\n\nCe message a été envoyé automatiquement par Preuve.\n",
        "Hello,\n\nAttached are the continuity attestation of {client} for {month} (signed PDF) and its signed "
        "statement ({statement}).\n\n{q_restorable}\n{restorable}\n\n{q_plan}\n{plan}\n\nTo verify the "
        "attestation offline:\n  preuve verify {pdf} --key PUBLIC_KEY.pem\nSigning key fingerprint: {keyid}\n\n"
        "This message was sent automatically by Preuve.\n",
    ),
}

ANSWERS: dict[str, tuple[str, str]] = {
    "yes": ("Oui", "Yes"),
    "partly": ("En partie", "Partly"),
    "no": ("Non", "No"),
    "unknown": ("Inconnu", "Unknown"),
}

STATUSES: dict[str, tuple[str, str]] = {
    "met": ("respecté", "met"),
    "violated": ("non respecté", "not met"),
    "unknown": ("inconnu", "unknown"),
    "not-applicable": ("sans objet", "not applicable"),
}

LOCATIONS: dict[str, tuple[str, str]] = {"onsite": ("sur site", "on site"), "offsite": ("hors site", "off site")}

MEDIA: dict[str, tuple[str, str]] = {
    "disk": ("disque", "disk"),
    "nas": ("NAS", "NAS"),
    "object-storage": ("stockage objet (cloud)", "object storage (cloud)"),
    "tape": ("bande", "tape"),
    "other": ("autre support", "other medium"),
}

DRILL_KINDS: dict[str, tuple[str, str]] = {
    "sample": ("par échantillon", "sample"),
    "full": ("restauration complète", "full restore"),
    "integrity": ("contrôle d'intégrité", "integrity check"),
}

FAILURE_CLASSES: dict[str, tuple[str, str]] = {
    "unreachable": ("Stockage injoignable", "Storage unreachable"),
    "auth": ("Accès refusé", "Access refused"),
    "repo-missing": ("Dépôt de sauvegarde introuvable", "Backup repository missing"),
    "repo-locked": ("Dépôt de sauvegarde verrouillé", "Backup repository locked"),
    "corrupt-data": ("Données de sauvegarde endommagées", "Damaged backup data"),
    "missing-snapshot": ("Instantané manquant", "Missing snapshot"),
    "content-mismatch": ("Contenu restauré différent de l'original", "Restored content differs from the original"),
    "stale": ("Sauvegarde trop ancienne", "Backup too old"),
    "policy-violation": ("Règle du plan non respectée", "Plan rule not met"),
    "suspicious-content": (
        "Contenu suspect (fichiers qui semblent chiffrés par un rançongiciel)",
        "Suspicious content (files that look encrypted by ransomware)",
    ),
    "timeout": ("Délai dépassé", "Timed out"),
    "sandbox": ("Problème de l'espace de test (disque de restauration)", "Test area problem (restore disk)"),
    "internal": ("Erreur interne de Preuve", "Preuve internal error"),
}

RULE_NAMES: dict[str, tuple[str, str]] = {
    "rpo": ("Fraîcheur des sauvegardes (RPO)", "Backup freshness (RPO)"),
    "rto": ("Temps de restauration (RTO)", "Restore time (RTO)"),
    "drill-frequency": ("Fréquence des tests", "Drill frequency"),
    "integrity-coverage": ("Couverture du contrôle d'intégrité", "Integrity-check coverage"),
    "retention": ("Durée de conservation", "Retention"),
    "copies": ("Nombre et diversité des copies (3-2-1-1-0)", "Number and diversity of copies (3-2-1-1-0)"),
    "immutability": ("Protection contre l'effacement", "Protection against deletion"),
    "secrets": ("Protection des secrets d'accès", "Protection of access secrets"),
    "anomalies": ("Variations anormales de volume", "Abnormal size changes"),
    "vanished-snapshots": ("Instantanés disparus", "Vanished snapshots"),
    "canaries": ("Fichiers témoins", "Canary files"),
}

# Recommendations: a code the builder derives from what is violated or unknown. ``{target}`` is the backup's
# name (or "all backups"); ``{rule}`` the rule's translated name.
RECOMMENDATIONS: dict[str, tuple[str, str]] = {
    "never-tested": (
        "Faire un test de restauration de {target} : aucune restauration n'a réussi ce mois-ci, cette sauvegarde "
        "n'est donc pas prouvée.",
        "Run a restore drill of {target}: no restore succeeded this month, so this backup is not proven.",
    ),
    "drill-failed": (
        "Examiner les tests échoués de {target}, corriger la cause, puis refaire un test.",
        "Look into the failed drills of {target}, fix the cause, then run a drill again.",
    ),
    "rpo-violated": (
        "Rendre les sauvegardes de {target} plus fréquentes ou plus fiables : la plus récente a dépassé "
        "l'objectif de fraîcheur (RPO).",
        "Make the backups of {target} more frequent or more reliable: the newest one grew older than the "
        "freshness target (RPO).",
    ),
    "rpo-unknown": (
        "Mesurer la fraîcheur de {target} : ses instantanés n'ont pas pu être lus ce mois-ci.",
        "Measure the freshness of {target}: its snapshots could not be read this month.",
    ),
    "rto-violated": (
        "Accélérer la restauration complète de {target} (lien plus rapide, copie plus proche) : elle dépasserait "
        "l'objectif de reprise (RTO).",
        "Speed up the full restore of {target} (faster link, nearer copy): it would exceed the recovery target (RTO).",
    ),
    "rto-unknown": (
        "Faire une restauration complète de {target} pour confirmer le temps de reprise (RTO).",
        "Run a full restore of {target} to confirm the recovery time (RTO).",
    ),
    "integrity-coverage-violated": (
        "Relire davantage de données de {target} lors des contrôles d'intégrité pour atteindre l'objectif.",
        "Read back more of {target}'s data in integrity checks to reach the target.",
    ),
    "integrity-coverage-unknown": (
        "Lancer un contrôle d'intégrité de {target} : aucune couverture n'a été mesurée ce mois-ci.",
        "Run an integrity check of {target}: no coverage was measured this month.",
    ),
    "drill-frequency-violated": (
        "Tester {target} plus souvent : le plan demande des tests plus fréquents.",
        "Test {target} more often: the plan asks for more frequent drills.",
    ),
    "immutability-violated": (
        "Activer une protection contre l'effacement (Object Lock) pour {target}, comme le plan l'exige.",
        "Turn on protection against deletion (Object Lock) for {target}, as the plan requires.",
    ),
    "immutability-unknown": (
        "Vérifier la protection contre l'effacement de {target} : elle n'a pas pu être mesurée.",
        "Check the protection against deletion of {target}: it could not be measured.",
    ),
    "copies-violated": (
        "Ajouter une copie des sauvegardes, hors site ou sur un autre support : la règle 3-2-1-1-0 n'est pas "
        "respectée.",
        "Add a copy of the backups, off site or on another medium: the 3-2-1-1-0 rule is not met.",
    ),
    "retention-violated": (
        "Allonger la durée de conservation des sauvegardes de {target} : elle est plus courte que l'objectif.",
        "Keep the backups of {target} longer: their retention is shorter than the target.",
    ),
    "canaries-violated": (
        "Vérifier les fichiers témoins de {target} : leur copie restaurée ne correspond pas à l'original.",
        "Check the canary files of {target}: their restored copy does not match the original.",
    ),
    "secrets-violated": (
        "Revoir la protection des secrets d'accès (mots de passe, clés) de {target}.",
        "Review how the access secrets (passwords, keys) of {target} are protected.",
    ),
    "anomalies-violated": (
        "Vérifier la variation inhabituelle de volume ou de nombre de fichiers de {target}.",
        "Check the unusual change in size or file count of {target}.",
    ),
    "vanished-snapshots-violated": (
        "Chercher pourquoi des instantanés de {target} ont disparu avant la fin de leur conservation.",
        "Find out why snapshots of {target} disappeared before the end of their retention.",
    ),
}

# For codes the table above lacks: "<rule>-violated" and "<rule>-unknown" of a known rule still read naturally.
_RULE_VIOLATED = (
    "Corriger ce qui fait échouer la règle « {rule} » pour {target}.",
    "Fix what makes the rule “{rule}” fail for {target}.",
)
_RULE_UNKNOWN = (
    "Fournir les mesures qui manquent à la règle « {rule} » pour {target} : son résultat est inconnu.",
    "Provide the measurements the rule “{rule}” lacks for {target}: its result is unknown.",
)
_UNKNOWN_CODE = (
    "Point à examiner avec votre prestataire ({target}) ; code de recommandation non traduit : « {code} ».",
    "To review with your provider ({target}); recommendation code not translated: “{code}”.",
)

_INDEX: dict[str, int] = {"fr": 0, "en": 1}


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[_INDEX[lang]]


def text(lang: Lang, key: str, **values: object) -> str:
    """The sentence ``key`` in ``lang`` with its placeholders filled; a missing key is a bug (KeyError)."""
    template = _pick(MESSAGES[key], lang)
    return template.format(**values) if values else template


def word(table: dict[str, tuple[str, str]], value: object, lang: Lang) -> str:
    """A vocabulary word; ``None`` reads "unknown", a value the table lacks is shown as it is (never dropped)."""
    if value is None:
        return text(lang, "unknown")
    pair = table.get(str(value))
    return _pick(pair, lang) if pair is not None else str(value)


def recommendation(lang: Lang, code: str, target: str, rule: str | None) -> str:
    """The recommendation ``code`` as a sentence; codes this version does not know still say something true."""
    rule_name = word(RULE_NAMES, rule, lang) if rule else ""
    pair = RECOMMENDATIONS.get(code)
    if pair is None:
        stem, _, outcome = code.rpartition("-")
        known_rule = stem if stem in RULE_NAMES else (rule if rule in RULE_NAMES else None)
        if known_rule is not None and outcome in ("violated", "unknown"):
            pair = _RULE_VIOLATED if outcome == "violated" else _RULE_UNKNOWN
            rule_name = word(RULE_NAMES, known_rule, lang)
        else:
            pair = _UNKNOWN_CODE
    return _pick(pair, lang).format(target=target, rule=rule_name, code=code)


def placeholders(sentence: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(sentence) if name}
