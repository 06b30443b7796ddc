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
    "period_partial": (
        "Période : du {start} au {end}, mois en cours",
        "Period: {start} to {end}, month so far",
    ),
    "month_so_far": ("mois en cours", "month so far"),
    "partial": (
        "Mois en cours : cette attestation ne couvre que le début du mois, jusqu'au {end}. Elle ne remplace pas "
        "l'attestation du mois complet, émise une fois le mois terminé.",
        "Month so far: this attestation covers only the beginning of the month, up to {end}. It does not replace "
        "the complete month's attestation, issued once the month has ended.",
    ),
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
        "réussis : {passed} · échoués : {failed} · n'ont pas pu aboutir : {errors} · interrompus : {interrupted}",
        "passed: {passed} · failed: {failed} · could not complete: {errors} · interrupted: {interrupted}",
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
    "d.last_passed_before": (
        "aucun ce mois-ci ; le dernier date du {when} (test n° {drill})",
        "none this month; the last one was on {when} (drill #{drill})",
    ),
    "d.snapshot": ("Instantané du dernier test réussi", "Snapshot of the last passing drill"),
    "d.entries": ("Résultats enregistrés sur la période", "Results recorded in the period"),
    "d.entries_value": ("{entries} entrées du registre", "{entries} ledger entries"),
    "d.disabled": ("État", "State"),
    "d.disabled_value": (
        "désactivée dans la configuration : ni tests ni sondages planifiés",
        "disabled in the configuration: no drills or probes scheduled",
    ),
    "disabled": ("désactivée", "disabled"),
    "d.rpo": ("Fraîcheur des sauvegardes (objectif RPO : {threshold})", "Backup freshness (RPO target: {threshold})"),
    "d.rpo_value": (
        "dans l'objectif {compliance} du temps · plus long écart : {gap} · âge de la plus récente en fin de période : "
        "{age} · période observée : {observed}",
        "within target {compliance} of the time · longest gap: {gap} · age of the newest one at period end: {age} · "
        "period observed: {observed}",
    ),
    "d.rpo_value_unobserved": (
        "part du temps dans l'objectif inconnue (période trop peu observée : {observed}) · plus long écart : {gap} · "
        "âge de la plus récente en fin de période : {age}",
        "share of the time within target unknown (too little of the period observed: {observed}) · longest gap: "
        "{gap} · age of the newest one at period end: {age}",
    ),
    "d.rpo_unknown": ("aucune mesure de fraîcheur ce mois-ci", "no freshness measurement this month"),
    "d.rto": ("Restauration complète (objectif RTO : {threshold})", "Full restore (RTO target: {threshold})"),
    "d.rto_value": ("durée estimée : {estimate}", "estimated time: {estimate}"),
    "d.rto_by_drill": ("durée estimée : {estimate} (test n° {drill})", "estimated time: {estimate} (drill #{drill})"),
    "d.rto_every": (
        "restauration complète demandée tous les {every}",
        "a full restore is required every {every}",
    ),
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
        "{coverage} des données relues sur les derniers {window} (objectif : {threshold})",
        "{coverage} of the data read back over the last {window} (target: {threshold})",
    ),
    "d.integrity_unknown": (
        "aucune relecture mesurée sur les derniers {window} (objectif : {threshold})",
        "no read-back measured over the last {window} (target: {threshold})",
    ),
    "d.integrity_failed": (
        "des dommages trouvés par les contrôles n° {drills}",
        "damage found by checks #{drills}",
    ),
    "d.immutability": ("Protection contre l'effacement", "Protection against deletion"),
    "immutability.on": (
        "Object Lock actif, mode {mode}, conservation {days} jours",
        "Object Lock on, {mode} mode, {days}-day retention",
    ),
    "immutability.off": ("pas d'Object Lock", "no Object Lock"),
    "immutability.versioning": ("versioning du bucket : {state}", "bucket versioning: {state}"),
    "immutability.append_only": (
        "ajout seul déclaré par le fournisseur (non mesurable)",
        "append-only declared by the provider (cannot be measured)",
    ),
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
    "incident.detected": (
        "Détecté le {when} (test n° {drill}, {kind} : {status})",
        "Detected on {when} (drill #{drill}, {kind}: {status})",
    ),
    "incident.failures": (
        "Tests en échec avant résolution : n° {drills}",
        "Failed drills before resolution: #{drills}",
    ),
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
    "references_line": ("Références : {refs}", "References: {refs}"),
    "reason": ("Détail (tel que noté par le moteur de règles) : {reason}", "Detail: {reason}"),
    "rule_data": (
        "Données techniques : mesuré {measured} ; exigé {required} ; éléments {evidence}",
        "Technical data: measured {measured}; required {required}; evidence {evidence}",
    ),
    # --- notes --------------------------------------------------------------------------------------------------
    "notes": ("Autres notes de l'équipe technique", "Other notes from the technical team"),
    "note.about_drill": ("à propos du test n° {drill}", "about drill #{drill}"),
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
        "Registre : {entries} entrées sur la période, à la suite de l'entrée n° {seq_before} (empreinte "
        "{head_before}) ; tête de chaîne n° {seq}, empreinte {head}. Un auditeur peut contrôler l'export du "
        "registre avec l'option --ledger.",
        "Ledger: {entries} entries in the period, following entry #{seq_before} (hash {head_before}); chain head "
        "#{seq}, hash {head}. An auditor can check the ledger export with the --ledger option.",
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

# Drill outcomes, as an incident names the drill that opened it.
DRILL_STATUSES: dict[str, tuple[str, str]] = {
    "passed": ("réussi", "passed"),
    "failed": ("échec", "failed"),
    "error": ("n'a pas pu aboutir", "could not complete"),
    "interrupted": ("interrompu", "interrupted"),
}

# The few words the policy engine writes in a rule's measured value or threshold (numbers are shown as they are).
VALUE_WORDS: dict[str, tuple[str, str]] = {
    "required": ("exigée", "required"),
    "off": ("désactivé", "off"),
    "append-only (declared)": ("ajout seul (déclaré)", "append-only (declared)"),
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

# Recommendations: exactly the codes :func:`preuve.reports.month.build_predicate` derives (listed in its module's
# docstring; a test compares the two lists). ``{target}`` is the backup's name (or "all backups"); ``{rule}`` the
# rule's translated name.
RECOMMENDATIONS: dict[str, tuple[str, str]] = {
    "never-tested": (
        "Faire un test de restauration de {target} : aucune restauration de cette sauvegarde n'a jamais réussi, "
        "elle n'est donc pas prouvée.",
        "Run a restore drill of {target}: no restore of this backup has ever succeeded, so it is not proven.",
    ),
    "not-tested-this-month": (
        "Tester de nouveau {target} : sa dernière restauration réussie date d'avant cette période.",
        "Test {target} again: its last successful restore was before this period.",
    ),
    "unresolved-failure": (
        "Examiner l'échec du test de {target}, en corriger la cause, puis refaire un test : aucun test réussi ne "
        "l'a suivi.",
        "Look into the failed drill of {target}, fix the cause, then run a drill again: no passing drill has "
        "followed it.",
    ),
    "drill-frequency": (
        "Tester {target} plus souvent : les tests réussis sont plus espacés que ne le demande le plan, ou un échec "
        "n'a pas été suivi d'un test réussi dans le délai prévu.",
        "Test {target} more often: passing drills are further apart than the plan asks, or a failure was not "
        "followed by a passing drill within the allowed delay.",
    ),
    "rpo-violated": (
        "Rendre les sauvegardes de {target} plus fréquentes ou plus fiables : la plus récente a dépassé "
        "l'objectif de fraîcheur (RPO).",
        "Make the backups of {target} more frequent or more reliable: the newest one grew older than the "
        "freshness target (RPO).",
    ),
    "rto-exceeded": (
        "Accélérer la restauration complète de {target} (lien plus rapide, copie plus proche) : elle dépasserait "
        "l'objectif de reprise (RTO).",
        "Speed up the full restore of {target} (faster link, nearer copy): it would exceed the recovery target (RTO).",
    ),
    "rto-unconfirmed": (
        "Faire une restauration complète de {target} pour confirmer le temps de reprise (RTO) : aucune ne l'a "
        "confirmé dans l'intervalle prévu par le plan.",
        "Run a full restore of {target} to confirm the recovery time (RTO): none confirmed it within the interval "
        "the plan sets.",
    ),
    "integrity-damage": (
        "Réparer le dépôt de {target} : un contrôle d'intégrité y a trouvé des données endommagées ; refaire "
        "ensuite un contrôle complet.",
        "Repair the repository of {target}: an integrity check found damaged data in it; then run a full check again.",
    ),
    "integrity-coverage": (
        "Relire toutes les données de {target} lors des contrôles d'intégrité : une partie n'a pas été relue "
        "dans la fenêtre prévue par le plan.",
        "Read back all of {target}'s data in integrity checks: part of it was not read within the window the "
        "plan sets.",
    ),
    "immutability-missing": (
        "Activer une protection contre l'effacement (Object Lock) pour {target}, comme le plan l'exige.",
        "Turn on protection against deletion (Object Lock) for {target}, as the plan requires.",
    ),
    "immutability-unverified": (
        "Vérifier la protection contre l'effacement de {target} : elle n'a pas pu être mesurée, ou elle n'est "
        "que déclarée par le fournisseur.",
        "Check the protection against deletion of {target}: it could not be measured, or it is only declared by "
        "the provider.",
    ),
    "copies-insufficient": (
        "Ajouter une copie des sauvegardes, hors site, sur un autre support ou protégée contre l'effacement : la "
        "règle 3-2-1-1-0 du plan n'est pas respectée.",
        "Add a copy of the backups, off site, on another medium or protected against deletion: the plan's "
        "3-2-1-1-0 rule is not met.",
    ),
    "retention-short": (
        "Allonger la durée de conservation des sauvegardes de {target} : elle est plus courte que l'objectif.",
        "Keep the backups of {target} longer: their retention is shorter than the target.",
    ),
    "secrets-exposed": (
        "Protéger le fichier de mot de passe du dépôt de {target} : il manque, ou d'autres que son propriétaire "
        "peuvent le lire.",
        "Protect the repository password file of {target}: it is missing, or others than its owner can read it.",
    ),
    "anomaly": (
        "Vérifier la variation inhabituelle de volume ou de nombre de fichiers de {target} (rançongiciel, "
        "disque non monté ?).",
        "Check the unusual change in size or file count of {target} (ransomware, a disk not mounted?).",
    ),
    "snapshots-vanished": (
        "Chercher pourquoi des instantanés de {target} ont disparu avant la fin de leur conservation.",
        "Find out why snapshots of {target} disappeared before the end of their retention.",
    ),
    "canaries-failed": (
        "Vérifier les fichiers témoins de {target} : leur copie restaurée manque ou ne correspond pas à l'original.",
        "Check the canary files of {target}: their restored copy is missing or does not match the original.",
    ),
    "canaries-missing": (
        "Déclarer des fichiers témoins pour {target} et les faire tous vérifier : sans eux, les tests ne "
        "prouvent pas le contenu.",
        "Declare canary files for {target} and have all of them checked: without them, drills cannot prove the "
        "content.",
    ),
    "unknown-data": (
        "Fournir les mesures qui manquent à la règle « {rule} » pour {target} : elle n'a pas pu être jugée.",
        "Provide the measurements the rule “{rule}” lacks for {target}: it could not be judged.",
    ),
    "rule-violated": (
        "Corriger ce qui fait échouer la règle « {rule} » pour {target}.",
        "Fix what makes the rule “{rule}” fail for {target}.",
    ),
}

# ``unknown-data`` without a rule: nothing at all is recorded about the target in the period.
_NO_DATA = (
    "Vérifier que {target} est bien sondée et testée : le registre ne contient aucun résultat la concernant sur "
    "la période.",
    "Check that {target} is probed and tested: the ledger holds no result about it for the period.",
)

# The policy engine's references (preuve.policies.facts), as a reader of each language cites them.
REFERENCES: dict[str, tuple[str, str]] = {
    "ISO/IEC 27001:2022 A.8.13": (
        "ISO/IEC 27001:2022, mesure A.8.13 (sauvegarde des informations)",
        "ISO/IEC 27001:2022, control A.8.13 (information backup)",
    ),
    "NIS2 Implementing Regulation (EU) 2024/2690, annex 4.2": (
        "Règlement d'exécution (UE) 2024/2690 (NIS2), annexe, point 4.2",
        "NIS2 Implementing Regulation (EU) 2024/2690, annex, point 4.2",
    ),
    "ANSSI hygiene guide, measure 37": (
        "Guide d'hygiène informatique de l'ANSSI, mesure 37",
        "ANSSI IT hygiene guide, measure 37",
    ),
    "HDS activity 6 (health data)": (
        "Référentiel HDS, activité 6 (données de santé)",
        "HDS certification, activity 6 (health data)",
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
    if code in ("unknown-data", "rule-violated") and not rule:
        pair = _NO_DATA if code == "unknown-data" else _UNKNOWN_CODE
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
