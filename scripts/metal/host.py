"""The host side of MLX's Metal kernels, read from MLX's own C++.

A dispatch function of mlx/backend/metal/*.cpp (e.g. quant_sdpa_vector_2pass)
is followed statement by statement: its local declarations are evaluated
(C++ expressions translated to Python), and the kernel name, function
constants, buffer bindings, grid and threadgroup sizes of each
dispatch_threadgroups are recorded. So the executor binds what MLX binds, at
the indices MLX uses: nothing here repeats them. What it cannot follow
(a statement it does not understand that a launch depends on) is an error
that names the C++ statement, never a guess.

Only the subset of C++ that these functions use is understood: declarations
of scalars and references, `if` blocks, the ternary operator, member calls
on arrays (shape, strides, dtype, flags), initializer lists of function
constants, and the calls on the command encoder. A `throw` that is reached
raises Thrown. Predicates that the host code defines (a lambda deciding which
inputs to copy, a function saying which formats a kernel has) are evaluated
from their C++ too (lambda_function, function): declarations, `if` blocks
and returns."""

import re
from dataclasses import dataclass

import numpy as np


class HostError(Exception):
    pass


class Thrown(HostError):
    """The dispatch code reached a `throw`: MLX would raise it."""


# MLX's C++ scalar types and the numpy types of their bytes (set_bytes).
CTYPES = {
    "bool": np.bool_,
    "int": np.int32,
    "int32_t": np.int32,
    "uint32_t": np.uint32,
    "int64_t": np.int64,
    "size_t": np.uint64,
    "uint64_t": np.uint64,
    "float": np.float32,
    "char": None,
}
_DECL = re.compile(
    r"^(?:constexpr\s+|const\s+)?("
    + "|".join(CTYPES)
    + r"|auto\s*&?|std::string)\s+(\w+)\s*=\s*(.*)$",
    re.S,
)
_SIZE_DECL = re.compile(r"^MTL::Size\s+(\w+)\s*\((.*)\)$", re.S)
_SIZE_ASSIGN = re.compile(r"^(\w+)\s*=\s*MTL::Size\s*\((.*)\)$", re.S)
_FC_LIST = re.compile(r"^(?:metal::MTLFCList\s+)?func_consts\s*=\s*\{(.*)\}$", re.S)
_FC = re.compile(r"\{\s*&(\w+)\s*,\s*MTL::DataType::DataType(\w+)\s*,\s*(\d+)\s*\}")
_ENCODER = re.compile(
    r"^compute_encoder\.(set_input_array|set_output_array|set_bytes)\s*\((.*),([^,]*)\)$",
    re.S,
)
_DISPATCH = re.compile(r"^compute_encoder\.dispatch_threadgroups\s*\((\w+),\s*(\w+)\)$")
_KNAME = re.compile(r"^(?:std::string\s+)?kname\s*(\+?=)\s*(.*)$", re.S)
_LAUNCH_STATEMENTS = (_SIZE_DECL, _SIZE_ASSIGN, _FC_LIST, _ENCODER, _DISPATCH, _KNAME)
_ASSIGN = re.compile(r"^(\w+)\s*=\s*(.*)$", re.S)


def _strip_comments(src):
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def _match(src, i, open_, close):
    """Index of the bracket that closes src[i] (an `open_`)."""
    depth = 0
    for j in range(i, len(src)):
        if src[j] == open_:
            depth += 1
        elif src[j] == close:
            depth -= 1
            if depth == 0:
                return j
    raise HostError(f"unbalanced {open_} at {src[i:i + 60]!r}")


def function_source(path, name):
    """(parameters, body) of the C++ function `name` in the file at path."""
    src = _strip_comments(path.read_text())
    m = re.search(
        r"\n(?:(?:static|inline|constexpr)\s+)*[\w:<>]+\s+" + name + r"\s*\(", src
    )
    if not m:
        raise HostError(f"no function {name} in {path}")
    close = _match(src, m.end() - 1, "(", ")")
    params = src[m.end() : close]
    start = src.index("{", close)
    return params, src[start + 1 : _match(src, start, "{", "}")]


def parameters(params):
    """{name: C++ type} of a parameter list."""
    out = {}
    for p in _split_top(params, ","):
        p = p.strip()
        if p:
            m = re.match(r"^(.*?)[\s&*]+(\w+)$", p, re.S)
            out[m.group(2)] = " ".join(m.group(1).replace("&", " ").split())
    return out


def _split_top(s, sep):
    """Split at `sep` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def switch_table(path, name):
    """{case label: returned value} of a function that is one switch of
    `case X: return Y;` (quant_mode_to_int, get_type_string)."""
    _, body = function_source(path, name)
    table = {}
    for label, value in re.findall(r"case\s+([\w:]+)\s*:\s*return\s+([^;]+);", body):
        table[label.split("::")[-1]] = eval(value, {"__builtins__": {}})
    if not table:
        raise HostError(f"{name} in {path} is not a switch of returns")
    return table


def statements(body):
    """The simple statements of a function body, each with the conditions of
    the `if` blocks around it (None for a block that is not an `if`: a loop,
    whose statements are not followed)."""
    out, stack, cur, i, last = [], [], "", 0, None
    while i < len(body):
        c = body[i]
        if c == "{":
            head = cur.strip()
            in_parens = cur.count("(") > cur.count(")")
            if in_parens or (head and not re.match(r"^(if|for|while|else)\b", head)):
                j = _match(body, i, "{", "}")  # an initializer list
                cur += body[i : j + 1]
                i = j + 1
                continue
            m = re.match(r"^if\s*\((.*)\)$", head, re.S)
            if m:
                stack.append(m.group(1))
            elif head == "else" and last is not None:
                stack.append(f"!({last})")
            else:
                stack.append(None)
            cur = ""
        elif c == "}":
            last = stack.pop()
            cur = ""
        elif c == ";" and cur.count("(") > cur.count(")"):
            cur += c  # for (...; ...; ...)
        elif c == ";":
            s = " ".join(cur.split())
            m = re.match(r"^if\s*\(", s)
            if m:  # if (cond) statement;
                close = _match(s, m.end() - 1, "(", ")")
                out.append(
                    (tuple(stack) + (s[m.end() : close],), s[close + 1 :].strip())
                )
            elif s:
                out.append((tuple(stack), s))
            cur = ""
        else:
            cur += c
        i += 1
    return out


def _ternary(e):
    """C++ `a ? b : c` (nested, right-associative) as Python."""
    e = e.strip()
    if e.startswith("(") and _match(e, 0, "(", ")") == len(e) - 1:
        return "(" + _ternary(e[1:-1]) + ")"
    depth, q = 0, None
    for i, ch in enumerate(e):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "?" and depth == 0:
            q = i
            break
    if q is None:
        return e
    depth, nested = 0, 0
    for i in range(q + 1, len(e)):
        ch = e[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch == "?":
            nested += 1
        elif depth == 0 and ch == ":" and e[i + 1 : i + 2] != ":" and e[i - 1] != ":":
            if nested == 0:
                cond, a, b = e[:q], e[q + 1 : i], e[i + 1 :]
                return f"(({_ternary(a)}) if ({cond}) else ({_ternary(b)}))"
            nested -= 1
    raise HostError(f"cannot read the ternary {e!r}")


def to_python(expr):
    """A C++ expression of the dispatch code as a Python expression."""
    e = " ".join(expr.split())
    e = re.sub(r"(^|[(,=!?:&|]\s*)\*\s*(\w+)", r"\1\2.value()", e)  # *optional
    e = _ternary(e)
    e = e.replace("&&", " and ").replace("||", " or ")
    e = re.sub(r"!(?!=)", " not ", e)
    e = e.replace("::", ".")
    e = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", e))
    e = re.sub(r"(?<![/])/(?![/])", "//", e)  # integer division, as in C++
    return e


def lambda_source(body, name):
    """(parameters, body) of the lambda `auto name = [...](...) {...};` in a
    function body."""
    m = re.search(r"\bauto\s+" + name + r"\s*=\s*\[[^\]]*\]\s*\(", body)
    if not m:
        raise HostError(f"no lambda {name}")
    close = _match(body, m.end() - 1, "(", ")")
    start = body.index("{", close)
    return body[m.end() : close], body[start + 1 : _match(body, start, "{", "}")]


def lambda_function(body, name, helpers, what=None):
    """The lambda `name` of a function body as a Python function of its
    parameters (see _callable)."""
    return _callable(*lambda_source(body, name), helpers, what or name)


def function(path, name, helpers):
    """The C++ function `name` of the file at path as a Python function of
    its parameters (see _callable)."""
    return _callable(*function_source(path, name), helpers, name)


def _callable(params, body, helpers, what):
    """A function of the host code as a Python function of its parameters,
    evaluated statement by statement from its C++: declarations, `if`
    blocks, returns. What it cannot follow is a HostError."""
    names = list(parameters(params))
    stmts = statements(body)

    def call(*args):
        ns = dict(helpers)
        ns.update(zip(names, args))

        def ev(expr, stmt):
            try:
                return eval(to_python(expr), {"__builtins__": {}}, ns)
            except Exception as err:
                raise HostError(f"cannot follow `{stmt}` in {what}: {err}")

        for conds, stmt in stmts:
            if any(c is None for c in conds):
                raise HostError(f"cannot follow `{stmt}` in {what}: in a loop")
            if not all(ev(c, f"if ({c})") for c in conds):
                continue
            if m := re.match(r"^return\b(.*)$", stmt, re.S):
                return ev(m.group(1), stmt)
            if m := _DECL.match(stmt):
                ns[m.group(2)] = ev(m.group(3), stmt)
                continue
            raise HostError(f"cannot follow `{stmt}` in {what}")
        raise HostError(f"{what} returns nothing")

    return call


class Unknown:
    """A local the executor could not evaluate, and why."""

    def __init__(self, stmt, err):
        self.stmt, self.err = stmt, err


@dataclass
class Launch:
    kernel: str
    function_constants: dict  # index -> value (bool or int)
    buffers: dict  # index -> numpy array (set_bytes values included)
    grid: tuple
    group: tuple


class Vector(list):
    """A std::vector (an array's shape or strides)."""

    def back(self):
        return self[-1]

    def size(self):
        return len(self)


class Arr:
    """An MLX array as the dispatch code sees it: a numpy array plus MLX's
    dtype name."""

    def __init__(self, data, dtype):
        self.data, self._dtype = data, dtype

    def shape(self, i=None):
        return Vector(self.data.shape) if i is None else self.data.shape[i]

    def strides(self, i=None):
        s = Vector(x // self.data.itemsize for x in self.data.strides)
        return s if i is None else s[i]

    def dtype(self):
        return self._dtype

    def ndim(self):
        return self.data.ndim

    def size(self):
        return self.data.size

    def flags(self):
        c = self.data.flags.c_contiguous

        class Flags:
            row_contiguous = c
            contiguous = c

        return Flags()


class Opt:
    """std::optional<array>."""

    def __init__(self, v=None):
        self.v = v

    def has_value(self):
        return self.v is not None

    def value(self):
        if self.v is None:
            raise HostError("empty optional dereferenced")
        return self.v


def follow(path, name, args, helpers, temporaries):
    """The launches of the dispatch function `name` in the C++ file at path.
    args: its parameters by C++ name; helpers: names the expressions call
    (select_sdpa_blocks, get_type_string, ...); temporaries(name, ns): the
    arrays it allocates itself (intermediate, sums, maxs)."""
    params, body = function_source(path, name)
    ptypes = parameters(params)
    missing = set(ptypes) - set(args)
    if missing:
        raise HostError(
            f"{name} takes parameters the executor does not give: {missing}"
        )
    ns = dict(helpers)
    ns.update(args)
    ctype = {n: t for n, t in ptypes.items() if t in CTYPES}
    launches, fcs, bound, kname = [], {}, {}, ""

    def ev(expr, stmt):
        try:
            v = eval(to_python(expr), {"__builtins__": {}}, ns)
        except HostError:
            raise
        except Exception as err:
            missing = [n for n, x in ns.items() if isinstance(x, Unknown) and n in expr]
            why = "; ".join(f"{n}: `{ns[n].stmt}` ({ns[n].err})" for n in missing)
            raise HostError(f"cannot follow `{stmt}` in {name}: {err}. {why}")
        if isinstance(v, Unknown):
            raise HostError(f"cannot follow `{v.stmt}` in {name}: {v.err}")
        return v

    def local(n, stmt):
        if n not in ns or isinstance(ns[n], Unknown):
            t = temporaries(n, ns)
            if t is None:
                return ev(n, stmt)
            ns[n] = t
        return ns[n]

    for conds, stmt in statements(body):
        if any(c is None for c in conds):
            # A loop or an else-if: fine as long as nothing a launch takes
            # from the code is in it.
            if any(r.match(stmt) for r in _LAUNCH_STATEMENTS):
                raise HostError(
                    f"cannot follow `{stmt}` in {name}: in a loop or else-if"
                )
            continue
        if not all(ev(c, f"if ({c})") for c in conds):
            continue
        if m := _SIZE_DECL.match(stmt) or _SIZE_ASSIGN.match(stmt):
            ns[m.group(1)] = tuple(
                int(ev(a, stmt)) for a in _split_top(m.group(2), ",")
            )
        elif m := _FC_LIST.match(stmt):
            fcs = {}
            for var, _, idx in _FC.findall(m.group(1)):
                fcs[int(idx)] = ev(var, stmt)
        elif m := _ENCODER.match(stmt):
            what, expr, idx = m.groups()
            i = int(ev(idx, stmt))
            if what == "set_bytes":
                e = expr.strip()
                v = local(e, stmt) if re.fullmatch(r"\w+", e) else ev(e, stmt)
                t = CTYPES.get(ctype.get(e)) or (
                    np.bool_
                    if isinstance(v, bool)
                    else np.int32 if isinstance(v, int) else np.float32
                )
                bound[i] = np.array([v], t)
            else:
                e = expr.strip()
                v = (
                    local(e[1:], stmt)
                    if e.startswith("*")
                    else local(e, stmt) if re.fullmatch(r"\w+", e) else ev(e, stmt)
                )
                if isinstance(v, Opt):
                    v = v.value()
                bound[i] = v.data if isinstance(v, Arr) else v
        elif m := _DISPATCH.match(stmt):
            launches.append(
                Launch(
                    kname,
                    dict(fcs),
                    dict(bound),
                    ev(m.group(1), stmt),
                    ev(m.group(2), stmt),
                )
            )
        elif m := _KNAME.match(stmt):
            v = str(ev(m.group(2), stmt))
            kname = kname + v if m.group(1) == "+=" else v
        elif stmt == "kname.clear()":
            kname = ""
        elif stmt.startswith("throw "):
            raise Thrown(f"{name} throws: {stmt[6:]}")
        elif m := _DECL.match(stmt):
            t, n, expr = m.groups()
            if t in CTYPES:
                ctype[n] = t
            try:
                ns[n] = ev(expr, stmt)
            except HostError as err:
                ns[n] = Unknown(stmt, err)
        elif m := _ASSIGN.match(stmt):
            n = m.group(1)
            if n in ns and not isinstance(ns[n], Unknown):
                try:
                    ns[n] = ev(m.group(2), stmt)
                except HostError as err:
                    ns[n] = Unknown(stmt, err)
    if not launches:
        raise HostError(f"{name} dispatches nothing the executor can see")
    return launches
