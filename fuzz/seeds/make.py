#!/usr/bin/env python3
"""Writes the fuzz seeds (fuzz/seeds/TARGET/*) from ../shared/fhir-data, in small numbers:
small spec examples for `resource`, queries for `query`, the first entries of Synthea
transaction bundles (and hand-made ones with conditional entries) for `bundle`.
Run once when the data changes; the seeds are committed."""

import gzip
import json
import pathlib
import sys
import unicodedata

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "fhir-data"


def write(target, name, text):
    d = HERE / target
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")


def main():
    examples = sorted((DATA / "r4-examples").glob("*.json"))
    if not examples:
        sys.exit(f"no examples under {DATA}")
    # The smallest example of each of a few types, compact.
    wanted = ["Patient", "Observation", "Condition", "Encounter", "Practitioner",
              "Organization", "MedicationRequest", "AllergyIntolerance", "Immunization",
              "Procedure", "DiagnosticReport", "CareTeam", "Consent", "Provenance", "Account"]
    for rtype in wanted:
        files = sorted((p for p in examples if p.name.startswith(rtype + "-")),
                       key=lambda p: p.stat().st_size)
        if files:
            value = json.loads(files[0].read_text(encoding="utf-8"))
            write("resource", files[0].stem + ".json",
                  json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    write("resource", "patient.xml",
          '<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/>'
          '<name><family value="Nelson"/><given value="Ann"/></name>'
          '<birthDate value="1980-02-03"/></Patient>')
    write("resource", "observation.xml",
          '<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><coding>'
          '<system value="http://loinc.org"/><code value="8867-4"/></coding></code>'
          '<subject><reference value="Patient/p1"/></subject>'
          '<valueQuantity><value value="1.50"/><unit value="kg"/></valueQuantity></Observation>')

    queries = [
        "Patient?family=nelson&given:exact=Ann&_count=5",
        "Patient?birthdate=ge1980-01-01&birthdate=lt2000&_sort=family",
        "Observation?code=http://loinc.org|8867-4,1234-5&_include=Observation:patient&_revinclude:iterate=Provenance:target",
        "Observation?subject:Patient.name=x&value-quantity=gt5.4|http://unitsofmeasure.org|mg&_summary=count",
        "Condition?code:below=http://hl7.org/fhir/sid/icd-10|J45&_elements=code,subject&_total=accurate",
        "Encounter?date=sa2020-01-01T10:00:00Z&_has:Observation:encounter:code=x&_include=*",
        "Patient?_id=a,b&_lastUpdated=ap2021&_tag=http://x|y&identifier:not=|z&name:missing=true",
        "Observation?_summary=text&_cursor=0001abc&_profile=http://p&status=final&date=eb2020-02",
        "MedicationRequest?patient=Patient/1&intent=order&_include:iterate=MedicationRequest:medication&_format=xml",
        "Patient?name:contains=%C3%A9l%20x&address-city=Oslo&general-practitioner=Practitioner/9",
    ]
    for i, q in enumerate(queries):
        write("query", f"q{i}", q)

    bundles = sorted((DATA / "synthea").glob("*.json.gz"))[:3]
    for path in bundles:
        bundle = json.loads(gzip.open(path).read())
        bundle["entry"] = bundle.get("entry", [])[:4]
        name = unicodedata.normalize("NFKD", path.name.split("_")[0]).encode("ascii", "ignore").decode()
        write("bundle", name + ".json",
              json.dumps(bundle, ensure_ascii=False, separators=(",", ":")))
    tx = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "name": [{"family": "X"}]},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=s|1"}},
            {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Observation", "status": "final",
             "code": {"text": "t"}, "subject": {"reference": "urn:uuid:a"},
             "performer": [{"reference": "Practitioner?identifier=s|22"}]},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": {"resourceType": "Patient", "id": "p2", "active": True},
             "request": {"method": "PUT", "url": "Patient/p2", "ifMatch": "W/\"2\""}},
            {"request": {"method": "PUT", "url": "Patient?identifier=s|3"},
             "resource": {"resourceType": "Patient", "gender": "male"}},
            {"request": {"method": "DELETE", "url": "Observation?code=x"}},
            {"request": {"method": "DELETE", "url": "Patient/p9"}},
            {"request": {"method": "GET", "url": "Patient?name=x"}},
        ],
    }
    write("bundle", "conditional.json", json.dumps(tx, separators=(",", ":")))
    batch = {"resourceType": "Bundle", "type": "batch", "entry": tx["entry"][:3]}
    write("bundle", "batch.json", json.dumps(batch, separators=(",", ":")))


if __name__ == "__main__":
    main()
