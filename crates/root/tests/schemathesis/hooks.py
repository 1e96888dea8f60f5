"""Schemathesis hooks for the root's API test (crates/root/tests/schemathesis.rs).

The OpenAPI document carries every descriptor rule JSON Schema can state. These hooks add
the few it cannot, so that schemathesis' generated valid requests are valid:

* names unique within a list: services of an application, ports (number and protocol,
  host port and protocol, name) of a service, volumes (name, and path among volumes and
  files) of a service, applications of one descriptor;
* `latency.toService` naming another service of the same application;
* an `autoscale`'s `min` at most its `max`;
* a PUT's body naming the application its path names.

In a generated valid body, a repeated name, port or volume path is renamed or renumbered, a
`toService` pointing nowhere is pointed at a sibling (or the constraint dropped, with no
sibling), an autoscale's `min` above its `max` swapped with it, and a PUT's path is set to
the name in its body. Invalid (negative) bodies, and their paths, are
left as generated.
Nothing else is changed, and nothing is filtered out.
"""

import re

import schemathesis

DNS_LABEL = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")


def _body_is_negative(case):
    meta = getattr(case, "meta", None)
    if meta is None:
        return False
    for location, component in meta.components.items():
        if str(getattr(location, "value", location)) == "body":
            return component.mode.is_negative
    return False


def _fresh_name(name, taken):
    """A DNS label like `name`, not in `taken`."""
    for i in range(1, 10_000):
        suffix = f"-{i}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("no free name")


def _rename_repeats(items, get, put):
    taken = {get(item) for item in items if isinstance(get(item), str)}
    seen = set()
    for item in items:
        name = get(item)
        if not isinstance(name, str):
            continue
        if name in seen:
            name = _fresh_name(name, taken)
            put(item, name)
            taken.add(name)
        seen.add(name)


def _renumber_repeats(ports, field):
    used = {(p.get(field), p.get("protocol", "tcp")) for p in ports if isinstance(p.get(field), int)}
    seen = set()
    for port in ports:
        number = port.get(field)
        if not isinstance(number, int):
            continue
        key = (number, port.get("protocol", "tcp"))
        if key in seen:
            free = next(n for n in range(1, 65536) if (n, key[1]) not in used)
            port[field] = free
            used.add((free, key[1]))
            key = (free, key[1])
        seen.add(key)


def _free_path(path, taken):
    """A path like `path` (as the schema allows it: at most 1024 characters), not in `taken`."""
    for i in range(1, 10_000):
        candidate = f"{path}-{i}"
        if len(candidate) > 1024:
            candidate = f"/volume-{i}"
        if candidate not in taken:
            return candidate
    raise AssertionError("no free path")


def _repair_volumes(service):
    volumes = [v for v in service.get("volumes") or [] if isinstance(v, dict)]
    _rename_repeats(volumes, lambda v: v.get("name"), lambda v, n: v.__setitem__("name", n))
    files = [f for f in service.get("files") or [] if isinstance(f, dict)]
    taken = {f.get("path") for f in files} | {v.get("path") for v in volumes}
    seen = {f.get("path") for f in files}
    for volume in volumes:
        path = volume.get("path")
        if not isinstance(path, str):
            continue
        if path in seen:
            path = _free_path(path, taken)
            volume["path"] = path
            taken.add(path)
        seen.add(path)


def _repair_autoscale(service):
    autoscale = service.get("autoscale")
    if not isinstance(autoscale, dict):
        return
    low, high = autoscale.get("min", 1), autoscale.get("max")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        autoscale["min"], autoscale["max"] = high, low


def _repair_service(service, names):
    _repair_volumes(service)
    _repair_autoscale(service)
    ports = [p for p in service.get("ports") or [] if isinstance(p, dict)]
    _renumber_repeats(ports, "port")
    _renumber_repeats(ports, "hostPort")
    _rename_repeats(ports, lambda p: p.get("name"), lambda p, n: p.__setitem__("name", n))
    constraints = service.get("constraints")
    if not isinstance(constraints, list):
        return
    others = [n for n in names if n != service.get("name")]
    kept = []
    for constraint in constraints:
        latency = constraint.get("latency") if isinstance(constraint, dict) else None
        target = latency.get("toService") if isinstance(latency, dict) else None
        if target is not None and target not in others:
            if not others:
                continue
            latency["toService"] = others[0]
        kept.append(constraint)
    service["constraints"] = kept


def _repair_application(application):
    spec = application.get("spec")
    services = spec.get("services") if isinstance(spec, dict) else None
    if not isinstance(services, list):
        return
    services = [s for s in services if isinstance(s, dict)]
    _rename_repeats(services, lambda s: s.get("name"), lambda s, n: s.__setitem__("name", n))
    names = [s.get("name") for s in services]
    for service in services:
        _repair_service(service, names)


def _metadata(application):
    metadata = application.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _repair(body):
    applications = body if isinstance(body, list) else [body]
    applications = [a for a in applications if isinstance(a, dict)]
    for application in applications:
        _repair_application(application)
    # Applications are named by namespace and name together.
    key = lambda a: (_metadata(a).get("namespace", "default"), _metadata(a).get("name"))
    taken = {key(a) for a in applications}
    seen = set()
    for application in applications:
        metadata = _metadata(application)
        if not isinstance(metadata.get("name"), str):
            continue
        if key(application) in seen:
            names = {name for (namespace, name) in taken if namespace == key(application)[0]}
            metadata["name"] = _fresh_name(metadata["name"], names)
            taken.add(key(application))
        seen.add(key(application))


@schemathesis.hook
def map_case(ctx, case):
    if isinstance(case.body, (dict, list)) and not _body_is_negative(case):
        _repair(case.body)
    if case.method.upper() != "PUT" or not isinstance(case.body, dict) or _body_is_negative(case):
        return case
    metadata = _metadata(case.body)
    namespace = metadata.get("namespace", "default")
    path = case.path_parameters or {}
    path_is_valid = all(isinstance(path.get(k), str) and DNS_LABEL.match(path[k]) for k in ("namespace", "name"))
    names_are_valid = all(isinstance(v, str) and DNS_LABEL.match(v) for v in (namespace, metadata.get("name")))
    if path_is_valid and names_are_valid:
        case.path_parameters = dict(path, namespace=namespace, name=metadata["name"])
    return case
