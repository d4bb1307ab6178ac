"""Spanish number words: cardinals (with gender and apocope), ordinals, decimals.

Written here rather than taken from num2words because num2words' Spanish converter
gets common cases wrong for speech ("veintiuno mil" for 21000, "tres punto cinco" for
3,5) and has no feminine forms; Spanish spelling rules are regular enough to encode
directly.
"""
from __future__ import annotations

_UNITS = [
    "cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve",
    "diez", "once", "doce", "trece", "catorce", "quince", "dieciséis", "diecisiete",
    "dieciocho", "diecinueve", "veinte", "veintiuno", "veintidós", "veintitrés",
    "veinticuatro", "veinticinco", "veintiséis", "veintisiete", "veintiocho", "veintinueve",
]
_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta",
         8: "ochenta", 9: "noventa"}
_HUNDREDS = {1: "ciento", 2: "doscientos", 3: "trescientos", 4: "cuatrocientos",
             5: "quinientos", 6: "seiscientos", 7: "setecientos", 8: "ochocientos",
             9: "novecientos"}


def _below_thousand(n: int, feminine: bool) -> str:
    """0 < n < 1000; 'uno' endings are fixed up by the caller (apocope/gender)."""
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        if hundreds == 1 and rest == 0:
            words.append("cien")
        else:
            h = _HUNDREDS[hundreds]
            words.append(h[:-2] + "as" if feminine and hundreds > 1 else h)
    if rest:
        if rest < 30:
            words.append(_UNITS[rest])
        else:
            tens, unit = divmod(rest, 10)
            words.append(_TENS[tens] + (f" y {_UNITS[unit]}" if unit else ""))
    return " ".join(words)


def _fix_final_one(words: str, form: str) -> str:
    """Ending 'uno'/'veintiuno' as 'un'/'veintiún' (apocope) or 'una'/'veintiuna' (feminine)."""
    if form == "apocope":
        if words.endswith("veintiuno"):
            return words[: -len("veintiuno")] + "veintiún"
        if words.endswith("uno"):
            return words[:-3] + "un"
    elif form == "feminine" and words.endswith("uno"):
        return words[:-3] + "una"
    return words


# Long scale: 10^6 millón, 10^12 billón, 10^18 trillón; 10^9 is "mil millones".
_SCALES = [(10**18, "trillón", "trillones"), (10**12, "billón", "billones"),
           (10**6, "millón", "millones")]


def cardinal(n: int, *, feminine: bool = False, apocope: bool = False) -> str:
    """Spanish cardinal. `apocope`: 'un'/'veintiún' before a masculine noun (un euro);
    `feminine`: 'una'/'doscientas' (una hora, doscientas personas)."""
    if n < 0:
        return "menos " + cardinal(-n, feminine=feminine, apocope=apocope)
    if n == 0:
        return "cero"
    final_form = "feminine" if feminine else ("apocope" if apocope else "")
    return _cardinal(n, feminine, final_form)


def _cardinal(n: int, feminine: bool, final_form: str) -> str:
    for value, singular, plural in _SCALES:
        if n >= value:
            high, low = divmod(n, value)
            # A number before "millón" is always masculine apocopated: "veintiún millones".
            head = "un " + singular if high == 1 else _cardinal(high, False, "apocope") + " " + plural
            return head + (" " + _cardinal(low, feminine, final_form) if low else "")
    if n >= 1000:
        high, low = divmod(n, 1000)
        # Before "mil": "veintiún mil" / "veintiuna mil" (feminine allowed), never "uno mil".
        head = "mil" if high == 1 else _fix_final_one(
            _below_thousand(high, feminine), "feminine" if feminine else "apocope") + " mil"
        return head + (" " + _cardinal(low, feminine, final_form) if low else "")
    return _fix_final_one(_below_thousand(n, feminine), final_form)


def takes_de(n: int) -> bool:
    """'un millón de euros', 'dos millones de personas' but 'un millón cien euros'."""
    return n >= 10**6 and n % 10**6 == 0


def digits(s: str) -> str:
    """Read a digit string one digit at a time (phone numbers, leading zeros)."""
    return " ".join(_UNITS[int(c)] for c in s if c.isdigit())


def decimal_part(s: str) -> str:
    """Digits after the decimal comma: leading zeros read as 'cero', the rest as a number
    when short ('3,05' -> 'cero cinco', '3,25' -> 'veinticinco'), else digit by digit."""
    stripped = s.lstrip("0")
    zeros = ["cero"] * (len(s) - len(stripped))
    if not stripped:
        return " ".join(zeros)
    rest = cardinal(int(stripped)) if len(stripped) <= 3 else digits(stripped)
    return " ".join(zeros + [rest])


def decimal(int_part: int, frac: str, *, negative: bool = False) -> str:
    words = cardinal(int_part) + " coma " + decimal_part(frac)
    return ("menos " + words) if negative else words


_ORD_UNITS = ["", "primero", "segundo", "tercero", "cuarto", "quinto", "sexto",
              "séptimo", "octavo", "noveno"]
_ORD_TENS = ["", "décimo", "vigésimo", "trigésimo", "cuadragésimo", "quincuagésimo",
             "sexagésimo", "septuagésimo", "octogésimo", "nonagésimo"]
_ORD_HUNDREDS = ["", "centésimo", "ducentésimo", "tricentésimo", "cuadringentésimo",
                 "quingentésimo", "sexcentésimo", "septingentésimo", "octingentésimo",
                 "noningentésimo"]
_ORD_SPECIAL = {11: "undécimo", 12: "duodécimo"}


def ordinal(n: int, *, feminine: bool = False, apocope: bool = False, plural: bool = False) -> str:
    """Spanish ordinal 1..9999 ('primera', 'tercer', 'vigésimo primero'); larger numbers
    fall back to the cardinal, as is usual in speech."""
    if n <= 0 or n >= 10000:
        return cardinal(n)
    words = []
    thousands, rest = divmod(n, 1000)
    if thousands:
        words.append("milésimo" if thousands == 1 else cardinal(thousands, apocope=True) + "milésimo")
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        words.append(_ORD_HUNDREDS[hundreds])
    if rest in _ORD_SPECIAL:
        words.append(_ORD_SPECIAL[rest])
    elif 13 <= rest <= 19:
        words.append("decimo" + _ORD_UNITS[rest - 10])  # decimotercero ... decimonoveno
    elif rest:
        tens, unit = divmod(rest, 10)
        if tens:
            words.append(_ORD_TENS[tens])
        if unit:
            words.append(_ORD_UNITS[unit])
    if feminine:
        words = [w[:-1] + "a" for w in words]
    elif apocope and words[-1] in ("primero", "tercero", "decimoprimero", "decimotercero"):
        words[-1] = words[-1][:-1]
    if plural:
        words = [w + "s" for w in words]
    return " ".join(words)
