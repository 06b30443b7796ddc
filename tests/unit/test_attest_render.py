"""The attestation page without a PDF: locale formats, the catalogue, honesty rules, the chart, the HTML."""

from __future__ import annotations

import importlib
import pkgutil
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from preuve.reports import catalogue as cat
from preuve.reports.chart import freshness_svg
from preuve.reports.formats import (
    NBSP,
    format_bytes,
    format_date,
    format_datetime,
    format_decimal,
    format_duration,
    format_month,
    format_number,
    format_percent,
)
from preuve.reports.render import render_html
from preuve.reports.view import Files, page
from tests.support.predicates import all_met, full_month, month_without_drills

FILES = Files("acme-2026-10.pdf", "acme-2026-10.statement.json", "preuve-key-0123456789abcdef.pem")
SIGNING = {"keyid": "ab" * 32, "certificate_sha256": "cd" * 32}


def _signed(predicate: dict[str, Any]) -> dict[str, Any]:
    return {**predicate, "signing": SIGNING}


def _text(html: str) -> str:
    """The visible text, tags removed and spaces (no-break ones included) collapsed, for phrase checks."""
    body = html[html.index("<body>") :]
    return " ".join(re.sub(r"<[^>]+>", " ", body).replace(NBSP, " ").replace("&#39;", "'").split())


# --- formats -------------------------------------------------------------------------------------------------------


def test_numbers_and_dates_follow_the_locale() -> None:
    assert format_number(1234.5, "fr", 1) == f"1{NBSP}234,5"
    assert format_number(1234.5, "en", 1) == "1,234.5"
    assert format_number(14210, "fr") == f"14{NBSP}210"
    assert format_number(-0.04, "en", 1) == "0.0"
    assert format_number(-1234567, "en") == "-1,234,567"
    assert format_decimal(100.0, "fr") == "100" and format_decimal(99.25, "fr", 2) == "99,25"
    assert format_percent(99.2, "fr") == f"99,2{NBSP}%" and format_percent(99.2, "en") == "99.2%"
    assert format_date(date(2026, 10, 31), "fr") == "31 octobre 2026"
    assert format_date(date(2026, 10, 31), "en") == "31 October 2026"
    assert format_date("2026-10-01T03:00:00Z", "fr") == "1er octobre 2026"
    assert format_datetime("2026-10-31T03:12:09Z", "fr") == "31 octobre 2026 à 03:12 UTC"
    assert format_datetime("2026-10-31T05:12:09+02:00", "en") == "31 October 2026, 03:12 UTC"
    assert format_month("2026-08", "fr") == "août 2026" and format_month("2026-08", "en") == "August 2026"
    assert format_duration(97200, "fr") == f"27{NBSP}h" and format_duration(5400, "en") == f"1{NBSP}h 30{NBSP}min"
    assert format_duration(3 * 86400 + 4 * 3600, "fr") == f"3{NBSP}j 4{NBSP}h"
    assert format_duration(3 * 86400, "en") == f"3{NBSP}d"
    assert format_duration(42, "en") == f"42{NBSP}s"
    assert format_bytes(3221225472, "fr") == f"3{NBSP}Gio" and format_bytes(3221225472, "en") == f"3{NBSP}GiB"
    assert format_bytes(1536, "en") == f"1.5{NBSP}KiB" and format_bytes(512, "fr") == f"512{NBSP}o"
    with pytest.raises(ValueError, match="time zone"):
        format_datetime("2026-10-31T03:12:09", "en")
    with pytest.raises(ValueError):
        format_number(float("nan"), "en")


# --- catalogue -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [cat.MESSAGES, cat.ANSWERS, cat.STATUSES, cat.LOCATIONS, cat.MEDIA, cat.DRILL_KINDS, cat.FAILURE_CLASSES,
     cat.RULE_NAMES, cat.RECOMMENDATIONS],
)  # fmt: skip
def test_every_sentence_exists_in_both_languages_with_the_same_placeholders(table: dict[str, tuple[str, str]]) -> None:
    for key, (fr, en) in table.items():
        assert fr.strip() and en.strip(), key
        assert cat.placeholders(fr) == cat.placeholders(en), key


def test_every_rule_and_failure_class_of_preuve_has_a_translation() -> None:
    from preuve.errors import FailureClass
    from preuve.policies import rules

    names = {
        importlib.import_module(f"preuve.policies.rules.{m.name}").__dict__.get("RULE")
        for m in pkgutil.iter_modules(rules.__path__)
    } - {None}
    assert names and names <= set(cat.RULE_NAMES)
    assert {c.value for c in FailureClass} <= set(cat.FAILURE_CLASSES)


def test_recommendations_unknown_to_the_catalogue_still_say_something_true() -> None:
    known = cat.recommendation("fr", "never-tested", "nas", "drill-frequency")
    assert known.startswith("Faire un test de restauration de nas")
    by_pattern = cat.recommendation("en", "retention-unknown", "usb", None)
    assert "Durée" not in by_pattern and "“Retention”" in by_pattern and "unknown" in by_pattern
    by_rule = cat.recommendation("fr", "canaries-violated", "nas", "canaries")  # not a builder code: by its rule
    assert "« Fichiers témoins »" in by_rule
    unknown = cat.recommendation("fr", "rotate-usb-disk-weekly", "toutes les sauvegardes", None)
    assert "« rotate-usb-disk-weekly »" in unknown and "prestataire" in unknown
    assert "“rotate-usb-disk-weekly”" in cat.recommendation("en", "rotate-usb-disk-weekly", "all backups", None)
    assert cat.word(cat.FAILURE_CLASSES, "martian-attack", "fr") == "martian-attack"
    assert cat.word(cat.STATUSES, None, "fr") == "inconnu"


def _builder_codes() -> list[str]:
    """The recommendation codes listed in preuve.reports.month's docstring (``* ``code``: ...`` lines)."""
    from preuve.reports import month

    assert month.__doc__ is not None
    section = month.__doc__.split("Codes:", 1)[1].split("Keys added", 1)[0]
    return re.findall(r"^\* ``([a-z-]+)``:", section, flags=re.MULTILINE)


def test_every_recommendation_code_of_the_builder_has_a_sentence_in_both_languages() -> None:
    from preuve.reports import month_policy

    codes = _builder_codes()
    assert len(codes) == 20 and len(set(codes)) == len(codes)
    assert sorted(codes) == sorted(cat.RECOMMENDATIONS)  # no code left to the fallback, no sentence for nothing
    derived = {*month_policy.VIOLATED_CODES.values(), *month_policy.UNKNOWN_CODES.values(), "rule-violated"}
    assert derived <= set(codes)
    for code in codes:
        for lang in ("fr", "en"):
            sentence = cat.recommendation(lang, code, "nas", "rpo")
            assert code not in sentence and sentence.endswith("."), (code, lang)
            assert "nas" in sentence or code == "copies-insufficient", (code, lang)  # copies: the client's, not one
    assert "Fraîcheur des sauvegardes (RPO)" in cat.recommendation("fr", "unknown-data", "nas", "rpo")
    assert "ledger holds no result" in cat.recommendation("en", "unknown-data", "nas", None)


def test_the_policy_engine_references_read_well_in_both_languages() -> None:
    from preuve.policies import facts

    engine = {facts.ISO27001, facts.NIS2, facts.ANSSI, facts.HDS}
    assert engine == set(cat.REFERENCES)
    predicate = full_month()
    predicate["rules"][0]["references"] = [facts.ISO27001, facts.NIS2, facts.ANSSI, facts.HDS, "Contrat §4"]
    french = _text(render_html(_signed(predicate), "fr", FILES))
    assert "Règlement d'exécution (UE) 2024/2690 (NIS2), annexe, point 4.2" in french
    assert "Guide d'hygiène informatique de l'ANSSI, mesure 37" in french and "Contrat §4" in french
    assert "hygiene guide" not in french and "Implementing Regulation" not in french
    english = _text(render_html(_signed(predicate), "en", FILES))
    assert "NIS2 Implementing Regulation (EU) 2024/2690, annex, point 4.2" in english
    assert "HDS certification, activity 6 (health data)" in english


# --- honesty -------------------------------------------------------------------------------------------------------


def test_a_target_is_tested_only_with_a_passing_drill_it_can_name() -> None:
    predicate = full_month()
    nas, offsite = page(_signed(predicate), "en", FILES)["targets"]
    assert nas.tested and nas.tested_text == "Yes, on 31 October 2026"
    assert not offsite.tested and offsite.tested_text == "No: no passing drill"

    claimed = full_month()
    claimed["targets"][1]["tested"] = True  # a flag alone, no drill behind it
    assert not page(_signed(claimed), "en", FILES)["targets"][1].tested
    claimed["targets"][1]["last_passed_drill"] = {"drill": 9, "at": "2026-10-30T01:00:00Z", "kind": "sample"}
    assert not page(_signed(claimed), "en", FILES)["targets"][1].tested  # and zero drills passed


def test_missing_data_reads_unknown_never_a_good_looking_default() -> None:
    view = page(_signed(full_month()), "fr", FILES)
    offsite = view["targets"][1]
    details = {d.label: d for d in offsite.details}
    assert offsite.rpo_short == "inconnu" and offsite.rpo_status == "unknown"
    assert offsite.rto_short == "inconnu"
    rpo = next(d for label, d in details.items() if label.startswith("Fraîcheur"))
    assert rpo.value == "aucune mesure de fraîcheur ce mois-ci" and rpo.status_text == "inconnu"
    integrity = details["Contrôle d'intégrité"]
    assert "aucune relecture" in integrity.value and integrity.status == "unknown"
    assert offsite.chart is None
    unknown_rule = view["rules"][-1]
    assert unknown_rule["verdict"] == "inconnu" and unknown_rule["value"] == "inconnu"

    broken = full_month()
    broken["headline"] = {"restorable": "mostly", "plan": "fine"}  # words this version does not know
    view = page(_signed(broken), "en", FILES)
    assert (view["restorable"], view["plan"]) == ("unknown", "unknown")


# --- chart ---------------------------------------------------------------------------------------------------------


def test_the_chart_draws_the_rpo_line_marks_ages_over_it_and_breaks_at_gaps() -> None:
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    points = [[f"2026-10-{d:02d}T{h:02d}:00:00Z", (h + 1) * 3600] for d in range(1, 11) for h in range(24)]
    points += [[f"2026-10-20T{h:02d}:00:00Z", 30 * 3600] for h in range(3)]  # after a 10-day gap, over the RPO
    svg = freshness_svg(points, 86400, start, end, "fr")
    assert svg is not None and svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script" not in svg and "href" not in svg
    assert svg.count("<polyline") == 2  # the gap breaks the line instead of drawing across it
    assert 'stroke-dasharray="6 4"' in svg and "objectif RPO" in svg
    assert svg.count('r="1.8"') == 3  # the three measurements over the RPO
    assert freshness_svg([], 86400, start, end, "en") is None


# --- HTML ----------------------------------------------------------------------------------------------------------


def test_french_page_says_everything_in_french_with_french_formats() -> None:
    html = render_html(_signed(full_month()), "fr", FILES)
    shown = _text(html)
    assert '<html lang="fr">' in html
    for phrase in (
        "Attestation de continuité",
        "Vos sauvegardes ont-elles été restaurées avec succès lors de tests ce mois-ci ?",
        "En partie",
        "Période : du 1er octobre 2026 au 31 octobre 2026 inclus (UTC)",
        "Oui, le 31 octobre 2026",
        "Non : aucun test réussi",
        "14 210 fichiers, 3 Gio",
        "dans l'objectif 99,2 % du temps",
        "Données de sauvegarde endommagées : nas",
        "Note de j.martin, 7 octobre 2026 à 09:30 UTC :",
        "Disque du NAS remplacé, nouvelle sauvegarde complète.",
        "Non résolu à la fin du mois",
        "Fraîcheur des sauvegardes (RPO)",
        "non respecté",
        "Références : ISO/IEC 27001:2022, mesure A.8.13 (sauvegarde des informations) · NIS2 2024/2690 4.2 · "
        "ANSSI 37 · HDS",
        "Rendre les sauvegardes de nas plus fréquentes",
        "Faire un test de restauration de offsite",
        "« rotate-usb-disk-weekly »",
        "Comment vérifier ce document",
        "preuve verify acme-2026-10.pdf --key preuve-key-0123456789abcdef.pem",
        "ab" * 32,
        "cd" * 32,
    ):
        assert phrase in shown, phrase
    for english in ("Backup freshness", "Restore drills", "How to verify", "unknown", "Partly"):
        assert english not in shown, english


def test_english_page_with_english_formats() -> None:
    shown = _text(render_html(_signed(full_month()), "en", FILES))
    for phrase in (
        "Continuity attestation",
        "Were your backups proven restorable by test restores this month?",
        "Period: 1 October 2026 to 31 October 2026 inclusive (UTC)",
        "14,210 files, 3 GiB",
        "within target 99.2% of the time",
        "Damaged backup data: nas",
        "Note by j.martin, 7 October 2026, 09:30 UTC:",
        "Not resolved by the end of the month",
        "How to verify this document",
        "“rotate-usb-disk-weekly”",
    ):
        assert phrase in shown, phrase
    assert "inconnu" not in shown and "Sauvegarde" not in shown


def test_a_month_without_any_drill_and_a_month_where_everything_is_met() -> None:
    none = _text(render_html(_signed(month_without_drills()), "en", FILES))
    assert "No backup was successfully restored in a test this month." in none
    assert "Backups successfully tested this month: 0 of 2." in none
    assert none.count("No: no passing drill") == 2 and "Yes, on" not in none
    assert "No incident was recorded this month." in none
    assert "never confirmed by a full restore" in none
    good = _text(render_html(_signed(all_met()), "fr", FILES))
    assert "Chaque sauvegarde a été restaurée avec succès" in good
    assert "Toutes les règles de votre plan ont été respectées." in good
    assert "Aucune recommandation" in good and "Aucun incident" in good
    assert "Sauvegardes testées avec succès ce mois-ci : 2 sur 2." in good


def test_the_html_is_self_contained_and_escapes_what_it_prints() -> None:
    predicate = full_month()
    predicate["incidents"][0]["notes"][0]["text"] = '<script>alert("x")</script> & <img src=x>'
    html = render_html(_signed(predicate), "en", FILES)
    assert "<script" not in html and "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|file:|//)""", html)
    assert "@import" not in html and "url(" not in html  # no font or stylesheet fetched by a mail client
    assert "@font-face" in render_html(_signed(predicate), "en", FILES, for_pdf=True)
