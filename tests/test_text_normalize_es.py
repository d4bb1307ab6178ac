"""Golden cases for the Spanish normaliser, one group per class of rule."""
import pytest

from tts_cli.text.normalize import normalize_text
from tts_cli.text.numbers_es import cardinal, ordinal

GOLDEN = [
    # cardinals
    ("Tengo 3 gatos.", "Tengo tres gatos."),
    ("Son 15 y 16.", "Son quince y dieciséis."),
    ("Hay 100 o 101 o 115.", "Hay cien o ciento uno o ciento quince."),
    ("Vinieron 1.500 personas.", "Vinieron mil quinientas personas."),
    ("Son 10.000 o 1.000.000.", "Son diez mil o un millón."),
    ("Unos 21000 en total.", "Unos veintiún mil en total."),
    ("Pesa 3,5 y 3,05.", "Pesa tres coma cinco y tres coma cero cinco."),
    ("Mide 1.500,25 en total.", "Mide mil quinientos coma veinticinco en total."),
    ("Marca 3.5 en México.", "Marca tres punto cinco en México."),
    ("Estamos a -5 y -3,5.", "Estamos a menos cinco y menos tres coma cinco."),
    ("Los números 1998-2000.", "Los números mil novecientos noventa y ocho-dos mil."),
    ("Son 21 millones y 1 millón.", "Son veintiún millones y un millón."),
    ("Llamó al 007.", "Llamó al cero cero siete."),
    ("Quedan 21 días y 31 casas.", "Quedan veintiún días y treinta y una casas."),
    ("Tengo 1 perro y 200 ovejas.", "Tengo un perro y doscientas ovejas."),
    ("El 1 de mayo.", "El uno de mayo."),
    ("El mp3 suena.", "El mp3 suena."),
    # ordinals
    ("El 1º y la 1ª.", "El primero y la primera."),
    ("La 2ª vez.", "La segunda vez."),
    ("El 3.er piso y el 1.er día.", "El tercer piso y el primer día."),
    ("El 1.º y la 2.ª.", "El primero y la segunda."),
    ("El 3er puesto.", "El tercer puesto."),
    ("La 21ª edición.", "La vigésima primera edición."),
    ("Los 10º y las 12ª.", "Los décimo y las duodécima."),
    # years
    ("Nací en 1998.", "Nací en mil novecientos noventa y ocho."),
    ("Estamos en 2026.", "Estamos en dos mil veintiséis."),
    ("En 2001 llegó.", "En dos mil uno llegó."),
    # percentages
    ("Subió un 50 %.", "Subió un cincuenta por ciento."),
    ("Bajó un 3,5%.", "Bajó un tres coma cinco por ciento."),
    ("Un 1 % y un 100%.", "Un uno por ciento y un cien por ciento."),
    # currencies
    ("Cuesta 3,50 €.", "Cuesta tres euros con cincuenta céntimos."),
    ("Cuesta 1 €.", "Cuesta un euro."),
    ("Cuesta 21€.", "Cuesta veintiún euros."),
    ("Son €5.", "Son cinco euros."),
    ("Son $20 o 20 $.", "Son veinte dólares o veinte dólares."),
    ("Vale $1,01.", "Vale un dólar con un centavo."),
    ("Vale 0,99 €.", "Vale noventa y nueve céntimos."),
    ("Ganó 1.000.000 €.", "Ganó un millón de euros."),
    ("Pagó 1.250 €.", "Pagó mil doscientos cincuenta euros."),
    ("Costó 2 £.", "Costó dos libras."),
    ("Debe -5 €.", "Debe menos cinco euros."),
    ("Son 3 EUR.", "Son tres euros."),
    # times
    ("Abrimos a las 10:30 h.", "Abrimos a las diez horas y treinta minutos."),
    ("Sale a las 21:01 h de Madrid.", "Sale a las veintiuna horas y un minuto de Madrid."),
    ("Quedamos a las 10:30.", "Quedamos a las diez y media."),
    ("Llego a la 1:15.", "Llego a la una y cuarto."),
    ("Cierra a las 20:00.", "Cierra a las veinte en punto."),
    ("Empieza a las 9:05.", "Empieza a las nueve y cinco."),
    ("Son las 18:00 horas.", "Son las dieciocho horas."),
    # dates
    ("Nació el 27/11/2026.", "Nació el veintisiete de noviembre de dos mil veintiséis."),
    ("El 01/01/2000 empezó.", "El uno de enero de dos mil empezó."),
    ("El 5-3-1999.", "El cinco de marzo de mil novecientos noventa y nueve."),
    ("Hoy es 15.08.2024.", "Hoy es quince de agosto de dos mil veinticuatro."),
    ("El 31/13/2020 no existe.", "El treinta y uno/trece/dos mil veinte no existe."),
    # abbreviations
    ("El Sr. García y la Sra. López.", "El señor García y la señora López."),
    ("La Srta. Ruiz.", "La señorita Ruiz."),
    ("El Dr. Pérez y la Dra. Gil.", "El doctor Pérez y la doctora Gil."),
    ("¿Ud. viene? ¿Uds. también?", "¿usted viene? ¿ustedes también?"),
    ("Vivo en el nº 5.", "Vivo en el número cinco."),
    ("Vivo en el n.º 7.", "Vivo en el número siete."),
    ("Peras, manzanas, etc.", "Peras, manzanas, etcétera."),
    ("Frutas, etc. y verduras.", "Frutas, etcétera y verduras."),
    ("Vino de EE. UU. ayer.", "Vino de Estados Unidos ayer."),
    ("Corrió 10 km en 1 h.", "Corrió diez kilómetros en una hora."),
    ("Pesa 70 kg y 1 kg más.", "Pesa setenta kilos y un kilo más."),
    ("Mide 1,80 m y 3 m.", "Mide uno coma ochenta metros y tres metros."),
    ("Va a 120 km/h.", "Va a ciento veinte kilómetros por hora."),
    ("Hace 20 °C.", "Hace veinte grados centígrados."),
    ("La m es una letra.", "La m es una letra."),
    ("Juan & María.", "Juan y María."),
    ("Escribe a ana@correo.es.", "Escribe a ana arroba correo.es."),
    # clean-up
    ("  Dijo:   “hola”  …  ", 'Dijo: "hola"...'),
    ("¿Qué  tal ?", "¿Qué tal?"),
]


@pytest.mark.parametrize("text,expected", GOLDEN)
def test_golden(text, expected):
    assert normalize_text(text, "es") == expected


def test_es_variants_use_spanish_rules():
    assert normalize_text("Cuesta 3,50 €.", "es-419") == "Cuesta tres euros con cincuenta céntimos."


@pytest.mark.parametrize("n,expected", [
    (0, "cero"), (16, "dieciséis"), (22, "veintidós"), (99, "noventa y nueve"),
    (500, "quinientos"), (700, "setecientos"), (900, "novecientos"), (1001, "mil uno"),
    (101000, "ciento un mil"), (2_000_000, "dos millones"), (1_000_000_000, "mil millones"),
    (10**12, "un billón"),
])
def test_cardinals(n, expected):
    assert cardinal(n) == expected


def test_cardinal_gender_and_apocope():
    assert cardinal(21, apocope=True) == "veintiún"
    assert cardinal(21, feminine=True) == "veintiuna"
    assert cardinal(300, feminine=True) == "trescientas"
    assert cardinal(-1) == "menos uno"


def test_ordinals():
    assert ordinal(13) == "decimotercero"
    assert ordinal(3, feminine=True) == "tercera"
    assert ordinal(1, apocope=True) == "primer"
    assert ordinal(2, plural=True, feminine=True) == "segundas"
    assert ordinal(100) == "centésimo"


def test_other_languages():
    assert normalize_text("I have 1,500 dogs and 3.5 cats.", "en-us") == \
        "I have one thousand five hundred dogs and three point five cats."
    assert normalize_text("Ich habe 3,5 Euro.", "de") == "Ich habe drei Komma fünf Euro."
    # unknown to num2words: only the clean-up
    assert normalize_text("  “x”  12 ", "xx-yy") == '"x" 12'
