#!/usr/bin/env python3
"""A scripted FHIR client session against a running fhirgate, through fhirpy used as-is.

    session.py BASE_URL TOKEN

A transaction Bundle creates a Patient and several Observations (urn:uuid references);
a search pages through every Observation a few at a time, following `next` links, and
checks each arrives exactly once; a search with a parameter and `_include` brings the
Patient; an update of the Patient; the history of that instance and of its type.
Exits non-zero (an AssertionError or the client's error) on the first thing that is wrong.
"""

import sys
import uuid

from fhirpy import SyncFHIRClient

N_OBSERVATIONS = 7
PAGE = 2


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def transaction(client, run):
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {
            "fullUrl": patient_url,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:fhirgate:session", "value": run}],
                "name": [{"family": "Session", "given": ["Fhirpy"]}],
                "birthDate": "1970-01-01",
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for i in range(N_OBSERVATIONS):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "8867-4"}],
                        "text": f"heart rate {run} {i}",
                    },
                    "subject": {"reference": patient_url},
                    "valueQuantity": {"value": 60 + i, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.execute("", method="post", data=bundle)
    check(response["type"] == "transaction-response", f"response type {response['type']}")
    answers = response["entry"]
    check(len(answers) == len(entries), f"{len(answers)} answers to {len(entries)} entries")
    locations = []
    for answer in answers:
        status = answer["response"]["status"]
        check(status.startswith("201"), f"an entry answered {status}")
        locations.append(answer["response"]["location"])
    patient_id = locations[0].split("/")[1]
    observation_ids = {loc.split("/")[1] for loc in locations[1:]}
    check(len(observation_ids) == N_OBSERVATIONS, "observation ids are not distinct")
    return patient_id, observation_ids


def paging(client, patient_id, observation_ids):
    search = client.resources("Observation").search(subject=f"Patient/{patient_id}").limit(PAGE)
    seen = []
    # fhirpy follows the `next` link of every page; the bound only stops a runaway loop.
    for i, obs in enumerate(search):
        check(i < 10 * N_OBSERVATIONS, "paging does not end")
        seen.append(obs.id)
    check(len(seen) == len(set(seen)), f"a resource arrived twice: {seen}")
    check(set(seen) == observation_ids, f"paging gave {sorted(seen)}, expected {sorted(observation_ids)}")
    # And the first page is a page: `_count` is honoured, with a next link.
    first = search.fetch_raw()
    check(len(first["entry"]) == PAGE, f"a first page of {len(first['entry'])}")
    check(any(l["relation"] == "next" for l in first["link"]), "no next link on the first page")


def include(client, patient_id, run):
    bundle = (
        client.resources("Observation")
        .search(code="http://loinc.org|8867-4", subject=f"Patient/{patient_id}")
        .include("Observation", "subject")
        .limit(100)
        .fetch_raw()
    )
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    check(len(matches) == N_OBSERVATIONS, f"{len(matches)} matches")
    check(
        [e["resource"]["resourceType"] for e in included] == ["Patient"],
        f"included {[e['resource']['resourceType'] for e in included]}",
    )
    check(included[0]["resource"]["id"] == patient_id, "the wrong Patient was included")
    check(
        included[0]["resource"]["identifier"][0]["value"] == run,
        "the included Patient is not the one created",
    )


def update(client, patient_id):
    patient = client.resources("Patient").search(_id=patient_id).get()
    check(patient.meta.versionId == "1", f"version {patient.meta.versionId} before the update")
    patient["active"] = True
    patient["name"][0]["given"] = ["Fhirpy", "Updated"]
    patient.save()
    again = client.reference("Patient", patient_id).to_resource()
    check(again.meta.versionId == "2", f"version {again.meta.versionId} after the update")
    check(again["active"] is True, "the update was not kept")
    check(again["name"][0]["given"] == ["Fhirpy", "Updated"], "the updated name was not kept")


def history(client, patient_id):
    instance = client.execute(f"Patient/{patient_id}/_history", method="get")
    check(instance["type"] == "history", f"instance history type {instance['type']}")
    versions = [e["resource"]["meta"]["versionId"] for e in instance["entry"]]
    check(versions == ["2", "1"], f"instance history versions {versions}")
    check(instance["entry"][0]["resource"].get("active") is True, "newest version first")
    # The type's history, every page: this Patient's two versions, each once.
    mine = []
    bundle = client.execute("Patient/_history", method="get", params={"_count": PAGE})
    for _ in range(100):
        for e in bundle.get("entry", []):
            if e.get("resource", {}).get("id") == patient_id:
                mine.append(e["resource"]["meta"]["versionId"])
        nxt = [l["url"] for l in bundle.get("link", []) if l["relation"] == "next"]
        if not nxt:
            break
        bundle = client.execute(nxt[0], method="get")
    else:
        raise AssertionError("type history paging does not end")
    check(sorted(mine) == ["1", "2"], f"type history holds versions {mine} of the Patient")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: session.py BASE_URL TOKEN")
    base, token = sys.argv[1], sys.argv[2]
    client = SyncFHIRClient(base, authorization=f"Bearer {token}", requests_config={"timeout": 60})
    run = uuid.uuid4().hex
    patient_id, observation_ids = transaction(client, run)
    paging(client, patient_id, observation_ids)
    include(client, patient_id, run)
    update(client, patient_id)
    history(client, patient_id)
    print(f"session ok: Patient/{patient_id}, {len(observation_ids)} Observations")


if __name__ == "__main__":
    main()
