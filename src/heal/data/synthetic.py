"""Built-in sample data, written by this project: PubMedQA-style items and MIMIC-style discharge notes.

    heal prep --dataset synthetic_pubmedqa --n 300 --seed 0 --output_path data/raw/synthetic_pqal.json
    heal prep --dataset synthetic_mimic --n 200 --seed 0 --output_path data/raw/synthetic_discharge.csv.gz

Both come out in exactly the real source formats (ori_pqal.json; MIMIC-IV-Note discharge.csv with the template's
section headers and `___` de-identification placeholders), so they exercise the same `heal prep` code as the real
files. Generation is deterministic for a seed. None of the text is taken from MIMIC: every sentence is built here
from small hand-written vocabularies.

PubMedQA-style items: the decision can be inferred from the RESULTS section (a significant effect → yes, no
difference → no, a trend or a mixed result → maybe), phrased several ways and surrounded by distractor sentences,
so a small model can learn it but has to read. Labels follow PQA-L's mix (55% yes, 34% no, 11% maybe).
`label_noise` replaces that share of decisions (and their conclusions) with a different one, to simulate noisy
annotation.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from pathlib import Path

from heal.data.io import atomic_path, check_output_path

LABEL_MIX = (("yes", 0.55), ("no", 0.34), ("maybe", 0.11))

INTERVENTIONS = [
    "early mobilisation", "telephone follow-up", "a pharmacist-led review", "vitamin D supplementation",
    "a nurse-led education programme", "structured exercise", "intensive glucose control", "remote monitoring",
    "prophylactic antibiotics", "a low-sodium diet", "cognitive behavioural therapy", "chlorhexidine bathing",
    "high-flow nasal oxygen", "a fall-prevention bundle", "delayed cord clamping", "probiotic supplementation",
]
CONDITIONS = [
    "heart failure", "type 2 diabetes", "chronic kidney disease", "COPD", "hip fracture", "sepsis",
    "community-acquired pneumonia", "major depression", "stroke", "atrial fibrillation", "asthma", "obesity",
    "preterm birth", "rheumatoid arthritis", "cirrhosis", "postoperative delirium",
]
OUTCOMES = [
    "30-day readmission", "in-hospital mortality", "length of stay", "pain scores", "HbA1c",
    "exacerbation rate", "infection rate", "time to discharge", "symptom burden", "emergency visits",
    "functional decline", "medication errors",
]
DESIGNS = ["a randomised controlled trial", "a prospective cohort study", "a retrospective cohort study",
           "a cluster-randomised trial", "a multicentre observational study"]
SETTINGS = ["three teaching hospitals", "a community hospital", "primary care practices", "a tertiary referral centre",
            "an integrated health system", "two intensive care units"]
MESHES = ["Humans", "Female", "Male", "Aged", "Middle Aged", "Adult", "Treatment Outcome", "Prospective Studies",
          "Retrospective Studies", "Risk Factors", "Hospitalization", "Follow-Up Studies"]

QUESTION_TEMPLATES = [
    "Does {i} reduce {o} in patients with {c}?",
    "Is {i} associated with lower {o} among patients with {c}?",
    "Can {i} improve {o} in {c}?",
    "Does {i} lower {o} after admission for {c}?",
]
RESULT_TEMPLATES = {
    "yes": [
        "{O} was significantly lower with {i} than with usual care ({a}% vs {b}%, p={p}).",
        "Compared with controls, patients receiving {i} had a significant reduction in {o} (adjusted odds ratio "
        "{r}, 95% CI {lo}-{hi}).",
        "{I} reduced {o} from {b}% to {a}% (p={p}); the effect persisted after adjustment for age and comorbidity.",
    ],
    "no": [
        "There was no significant difference in {o} between the groups ({a}% vs {b}%, p={p}).",
        "{I} did not change {o} (adjusted odds ratio {r}, 95% CI {lo}-{hi}).",
        "{O} was similar with {i} and with usual care ({a}% vs {b}%; p={p}).",
    ],
    "maybe": [
        "{O} tended to be lower with {i} ({a}% vs {b}%), but the difference did not reach significance (p={p}).",
        "{I} reduced {o} at three months but not at twelve months, and the subgroup results were inconsistent.",
        "The reduction in {o} with {i} was significant in one centre but not in the pooled analysis (p={p}).",
    ],
}
CONCLUSIONS = {
    "yes": "{I} reduces {o} in patients with {c}.",
    "no": "{I} does not reduce {o} in patients with {c}.",
    "maybe": "The effect of {i} on {o} in {c} remains uncertain; larger trials are needed.",
}
DISTRACTORS = [
    "Baseline characteristics were similar between groups.",
    "The mean age was {age} years and {female}% were women.",
    "Adherence to the protocol was {adh}%.",
    "Loss to follow-up was under {loss}% in both arms.",
    "Secondary outcomes included quality of life and cost.",
]


def _sample_label(rng: random.Random) -> str:
    x, total = rng.random(), 0.0
    for label, share in LABEL_MIX:
        total += share
        if x < total:
            return label
    return LABEL_MIX[-1][0]


def _effect_numbers(rng: random.Random, label: str) -> dict:
    b = rng.randint(15, 45)
    gap = {"yes": rng.randint(6, 14), "no": rng.randint(-1, 1), "maybe": rng.randint(2, 5)}[label]
    p = {"yes": rng.choice(["0.001", "0.003", "0.01", "0.02", "<0.001"]), "no": f"0.{rng.randint(35, 91)}",
         "maybe": f"0.0{rng.randint(6, 9)}"}[label]
    r = {"yes": rng.uniform(0.45, 0.75), "no": rng.uniform(0.92, 1.08), "maybe": rng.uniform(0.8, 0.9)}[label]
    half = {"yes": 0.1, "no": 0.2, "maybe": 0.15}[label]
    return {"a": b - gap, "b": b, "p": p, "r": f"{r:.2f}", "lo": f"{r - half:.2f}", "hi": f"{r + half:.2f}"}


def _fill(template: str, words: dict) -> str:
    return template.format(**words)


def pubmedqa_item(rng: random.Random, label: str, noisy_label: str | None = None) -> dict:
    """One synthetic PQA-L item whose RESULTS decide `label`; `noisy_label` overrides the annotation only."""
    i, c, o = rng.choice(INTERVENTIONS), rng.choice(CONDITIONS), rng.choice(OUTCOMES)
    words = {"i": i, "I": i[0].upper() + i[1:], "c": c, "o": o, "O": o[0].upper() + o[1:],
             **_effect_numbers(rng, label)}
    n = rng.randint(80, 2400)
    background = (f"{words['O']} remains a burden for patients with {c}. Whether {i} helps is debated. "
                  f"We assessed the effect of {i} on {o}.")
    methods = f"We conducted {rng.choice(DESIGNS)} of {n} adults with {c} in {rng.choice(SETTINGS)}."
    extras = rng.sample(DISTRACTORS, k=2)
    extra_words = {"age": rng.randint(45, 81), "female": rng.randint(30, 70), "adh": rng.randint(70, 98),
                   "loss": rng.randint(3, 12)}
    results = [_fill(rng.choice(RESULT_TEMPLATES[label]), words)] + [e.format(**extra_words) for e in extras]
    rng.shuffle(results)
    decision = noisy_label or label
    return {
        "QUESTION": _fill(rng.choice(QUESTION_TEMPLATES), words),
        "CONTEXTS": [background, methods, " ".join(results)],
        "LABELS": ["BACKGROUND", "METHODS", "RESULTS"],
        "MESHES": sorted(rng.sample(MESHES, k=4)),
        "YEAR": str(rng.randint(2001, 2024)),
        "reasoning_required_pred": decision,
        "reasoning_free_pred": decision,
        "final_decision": decision,
        "LONG_ANSWER": _fill(CONCLUSIONS[decision], words),
    }


def make_pubmedqa(n: int, seed: int = 0, label_noise: float = 0.0) -> dict[str, dict]:
    """`n` items keyed by synthetic 8-digit PMIDs (9xxxxxxx, outside the range of real PQA-L PMIDs)."""
    rng = random.Random(seed)
    noise_rng = random.Random(f"label-noise-{seed}")  # separate stream: noise never changes the items themselves
    items = {}
    for k in range(n):
        label = _sample_label(rng)
        noisy = None
        if noise_rng.random() < label_noise:
            noisy = noise_rng.choice([other for other, _ in LABEL_MIX if other != label])
        items[str(90000000 + seed * 100000 + k)] = pubmedqa_item(rng, label, noisy)
    return items


def make_folds(pmids: list[str], n_folds: int = 10, seed: int = 0) -> dict:
    """A CV folds file in the official layout: {"folds": {"fold0": {"dev": [...]}, ...}}."""
    order = list(pmids)
    random.Random(seed).shuffle(order)
    return {"note": "synthetic folds written by heal prep",
            "folds": {f"fold{k}": {"dev": order[k::n_folds]} for k in range(n_folds)}}


def write_pubmedqa(path: str | Path, n: int, seed: int = 0, label_noise: float = 0.0,
                   folds_path: str | Path | None = None) -> dict:
    path = check_output_path(path, (".json",))
    items = make_pubmedqa(n, seed, label_noise)
    if folds_path:
        folds_path = check_output_path(folds_path, (".json",))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(items, indent=1), encoding="utf-8")
        if folds_path:
            with atomic_path(folds_path) as folds_tmp:
                folds_tmp.write_text(json.dumps(make_folds(list(items), seed=seed), indent=1), encoding="utf-8")
    labels = [v["final_decision"] for v in items.values()]
    return {"written": n, "labels": {label: labels.count(label) for label, _ in LABEL_MIX}}


# --- MIMIC-IV-Note style discharge summaries -------------------------------------------------------------------

DIAGNOSES = [
    # (diagnosis, chief complaint, treatment in hospital, discharge medication, follow-up advice)
    ("community-acquired pneumonia", "cough and fever", "ceftriaxone and azithromycin", "amoxicillin 500 mg PO TID",
     "finish your antibiotic course"),
    ("acute decompensated heart failure", "shortness of breath", "IV furosemide diuresis", "furosemide 40 mg PO DAILY",
     "weigh yourself every morning and call if you gain more than 3 lbs"),
    ("diabetic ketoacidosis", "nausea and vomiting", "an insulin drip and IV fluids", "insulin glargine 20 units SC QHS",
     "check your blood sugar four times a day"),
    ("cellulitis of the left leg", "leg redness and swelling", "IV vancomycin", "cephalexin 500 mg PO QID",
     "keep the leg elevated"),
    ("upper gastrointestinal bleed", "black stools", "a pantoprazole drip and an endoscopy", "pantoprazole 40 mg PO BID",
     "avoid NSAIDs such as ibuprofen"),
    ("COPD exacerbation", "wheezing", "nebulisers and prednisone", "prednisone 40 mg PO DAILY",
     "use your inhalers as prescribed"),
    ("urinary tract infection", "dysuria and confusion", "IV ceftriaxone", "ciprofloxacin 500 mg PO BID",
     "drink plenty of fluids"),
    ("new atrial fibrillation", "palpitations", "rate control with metoprolol", "apixaban 5 mg PO BID",
     "do not miss doses of your blood thinner"),
    ("acute kidney injury", "decreased urine output", "IV fluids and holding nephrotoxic medications",
     "no new medications", "have your labs checked this week"),
    ("syncope", "a fainting episode", "telemetry monitoring and an echocardiogram", "no new medications",
     "stand up slowly and stay hydrated"),
]
PMH = ["hypertension", "hyperlipidemia", "type 2 diabetes", "CKD stage 3", "GERD", "osteoarthritis",
       "hypothyroidism", "depression", "obstructive sleep apnea", "prior stroke"]
SERVICES = ["MEDICINE", "MEDICINE", "MEDICINE", "CARDIOLOGY", "SURGERY"]
DISPOSITIONS = ["Home", "Home With Service", "Extended Care"]
MIMIC_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text")


def _discharge_text(rng: random.Random) -> str:
    dx, cc, treatment, med, advice = rng.choice(DIAGNOSES)
    sex = rng.choice(["F", "M"])
    title, pronoun = ("Ms.", "She") if sex == "F" else ("Mr.", "He")
    pmh = rng.sample(PMH, k=rng.randint(2, 4))
    days = rng.randint(2, 9)
    wbc, cr, hgb = rng.uniform(4, 18), rng.uniform(0.6, 3.2), rng.uniform(7.5, 15)
    improved = rng.choice(["improved", "resolved", "steadily improved"])
    bhc = (f"{title} ___ is a ___ year old {'woman' if sex == 'F' else 'man'} with {', '.join(pmh)} who presented "
           f"with {cc} and was found to have {dx}.\n \nACTIVE ISSUES:\n# {dx.capitalize()}: treated with {treatment}. "
           f"{pronoun} {improved} over {days} days and was transitioned to {med}.\n"
           f"# {pmh[0].capitalize()}: home regimen continued.\n \nTRANSITIONAL ISSUES:\n- {advice.capitalize()}.\n"
           f"- Follow up with PCP Dr. ___ within 1 week.")
    di = (f"Dear {title} ___,\n \nIt was a pleasure taking care of you at ___.\n \nWHY WERE YOU ADMITTED?\n- You came "
          f"in with {cc}.\n \nWHAT HAPPENED IN THE HOSPITAL?\n- You were found to have {dx}.\n- You were treated with "
          f"{treatment} and you got better.\n \nWHAT SHOULD YOU DO AT HOME?\n- Please {advice}.\n- Take {med}.\n"
          f" \nWe wish you the best,\nYour ___ Care Team")
    meds = "\n".join(f"{k}. {m}" for k, m in enumerate(["Lisinopril 10 mg PO DAILY", "Atorvastatin 40 mg PO QPM",
                                                          "Metformin 500 mg PO BID"][:rng.randint(1, 3)], 1))
    return (
        f" \nName:  ___                     Unit No:   ___\n \nAdmission Date:  ___              Discharge Date:   ___\n"
        f" \nDate of Birth:  ___             Sex:   {sex}\n \nService: {rng.choice(SERVICES)}\n \nAllergies: \n"
        f"{rng.choice(['No Known Allergies / Adverse Drug Reactions', 'Penicillins', 'Sulfa (Sulfonamide Antibiotics)'])}"
        f"\n \nAttending: ___.\n \nChief Complaint:\n{cc}\n \nMajor Surgical or Invasive Procedure:\nNone\n \n \n"
        f"History of Present Illness:\n{title} ___ is a ___ year old with {', '.join(pmh)} who presents with {cc} for "
        f"{rng.randint(1, 6)} days. In the ED, initial vitals were T {rng.uniform(97, 102.5):.1f} HR "
        f"{rng.randint(60, 125)} BP {rng.randint(95, 170)}/{rng.randint(55, 95)} RR {rng.randint(14, 28)} "
        f"O2 sat {rng.randint(88, 100)}% RA.\n \nPast Medical History:\n" + "\n".join(f"- {p}" for p in pmh) +
        f"\n \nSocial History:\n___\nFamily History:\nNon-contributory.\n \nPhysical Exam:\nADMISSION PHYSICAL EXAM:\n"
        f"GENERAL: {rng.choice(['NAD', 'uncomfortable', 'tired-appearing'])}\nLUNGS: "
        f"{rng.choice(['CTAB', 'crackles at the bases', 'diffuse wheezes'])}\n \nPertinent Results:\n"
        f"___ 07:20AM BLOOD WBC-{wbc:.1f} Hgb-{hgb:.1f} Plt-{rng.randint(120, 420)}\n"
        f"___ 07:20AM BLOOD Glucose-{rng.randint(80, 380)} Creat-{cr:.1f} Na-{rng.randint(130, 146)}\n \n"
        f"Brief Hospital Course:\n{bhc}\n \nMedications on Admission:\nThe Preadmission Medication list is accurate "
        f"and complete.\n{meds}\n \nDischarge Medications:\n{meds}\n{meds.count(chr(10)) + 2}. {med}\n \n"
        f"Discharge Disposition:\n{rng.choice(DISPOSITIONS)}\n \nDischarge Diagnosis:\nPrimary: {dx}\n"
        f"Secondary: {', '.join(pmh)}\n \nDischarge Condition:\nMental Status: Clear and coherent.\nLevel of "
        f"Consciousness: Alert and interactive.\nActivity Status: Ambulatory - Independent.\n \n"
        f"Discharge Instructions:\n{di}\n \nFollowup Instructions:\n___\n"
    )


def mimic_rows(n: int, seed: int = 0, start: int = 0):
    """Yield `n` discharge.csv rows (dicts in the MIMIC-IV-Note column order)."""
    rng = random.Random(seed)
    for k in range(start, start + n):
        subject = 10000000 + seed * 1000000 + k
        year = rng.randint(2110, 2190)
        chart = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 00:00:00"
        yield {"note_id": f"{subject}-DS-{k % 40 + 1}", "subject_id": str(subject),
               "hadm_id": str(20000000 + seed * 1000000 + k), "note_type": "DS", "note_seq": str(k % 40 + 1),
               "charttime": chart, "storetime": chart.replace("00:00:00", f"{rng.randint(10, 23)}:{rng.randint(10, 59)}:00"),
               "text": _discharge_text(rng)}


def write_mimic(path: str | Path, n: int, seed: int = 0) -> dict:
    """Write a discharge.csv (or .csv.gz) of `n` synthetic notes."""
    path = check_output_path(path, (".csv", ".csv.gz"))
    with atomic_path(path) as tmp:
        raw = gzip.open(tmp, "wb") if str(path).endswith(".gz") else open(tmp, "wb")
        with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MIMIC_COLUMNS)
            writer.writeheader()
            writer.writerows(mimic_rows(n, seed))
    return {"written": n}
