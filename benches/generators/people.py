#!/usr/bin/env python3
"""Independent test data for identity resolution: one population, three sources, ground truth.

    python3 benches/generators/people.py --persons N --out DIR [--seed S] [--quiet]

Written from scratch, without looking at Panorama's own demo generator, so that match quality
measured on it is not tuned to the engine. Standard library only; deterministic for a seed (same
seed and N give byte-identical files). 100k persons: ~15 s, ~150 MB of memory.

Output in DIR: registry.csv, crm.csv, shop.csv, truth.csv (source,record_id,person_id, one row
per record of every file) and a panorama.toml mapping the three sources (map and one custom
field only: blocking, comparisons and contradictions stay the engine's defaults). A summary with
the rates measured on the output is printed to stdout; the figures below are the generator's
settings, "(x% of records)" where a rate only applies to some values.

POPULATION (reference date 2025-06-01; everybody is 16 or older)
  * Households: 62% in the Netherlands, 25% Germany, 13% Belgium. Singles 35%, shared flats of
    2-3 unrelated adults 3%, couples 28% (4% same-sex), couples with 1-4 grown-up children
    (16-30) 26%, single parents 8%: 2.2 persons per household, 84% of persons live with
    somebody. Everybody in a household shares its address.
  * Cultures per country (NL: 80% Dutch, Turkish 5%, Moroccan 5%, English 4%, German 3%,
    Flemish 2%, French 1%; DE: 82% German, 9% Turkish, ...; BE: 48% Flemish, 38% French, ...);
    a partner is of another culture 15% of the time, a child takes either parent's. Names keep
    their letters: ü, ß, é, ç, ë, ı, ş, İ, apostrophes (O'Brien), hyphens (Jean-Pierre).
  * Family names: a real, frequency-ordered head list per culture ("de Jong", "Müller",
    "Martin", "Yılmaz", ...) carries 15% (Dutch, Flemish) to 45% (Turkish) of persons, Zipf 0.5
    inside it ("de Jong": 0.8% of Dutch persons); a generated long tail of compound names
    ("van der Brinkman", "Bergveen", "Steinhauer", "Akdemir"; up to N/3 of them per culture,
    flatter, Zipf 0.3; each particle keeps its share: ~37% of Dutch names have one) the rest:
    at N = 100k the registry holds ~38k distinct surnames, ~24k of them once.
    Given names: Zipf 0.45 over 20-90 names per culture and sex. Namesakes (same given and
    family name, different persons, almost always other birth dates and addresses) arise
    from these frequencies: ~12% of persons at N = 100k.
  * Married couples (68% of opposite-sex couples): the partner takes the head's surname (NL 45%,
    DE/EN/FR 80%, TR 90%, Flemish/Moroccan 10%) and keeps the birth name; children take the
    head's surname (a single mother's children: another surname 40%).
  * Given names: 40% of Dutch/Flemish/German/French and 50% of English persons have a second
    given name (10% Turkish/Moroccan). A person whose given name has nicknames goes by one 30%
    of the time (Johannes -> Hans/Jan/Johan, Robert -> Bob, Elisabeth -> Els/Liz, Cornelis ->
    Kees); 8% of the others with a second name go by it. Siblings never share a given name.
  * Twins: 7% of households with 2+ children (same birth date, family name, address and
    mostly sex; different given names).
  * Apartments: 14% of Dutch/Belgian households live in a building with numbered units (12-1,
    12A, "7 bus 2"), 4% more of Dutch addresses have an addition (12a, 12 hs); 15% of German
    households share street, number and postcode with other households and have no unit at
    all: the same address is not the same household.
  * National id: 9 digits, unique per person, 10% start with 0. Mobile phone: 92% (<30 years),
    88%, 60% (65+), 35% (80+). Landline per household: 25% / 45% / 70% by the head's age,
    shared by every member. Personal e-mail 90% / 65% (65+) / 40% (80+); 21% of all persons
    have a 2nd address (work or another mailbox), 7% a 3rd; 15% of households of 2+ share a
    family mailbox ("fam.devries@ziggo.nl"). All identifiers are unique between persons
    except family mailboxes and landlines.
  * Moved: 8% of households moved; one source (registry 15%, crm 50%, shop 35%) still has the
    old address (same city 70%).
  * Marriage: of the persons who took a partner's surname, 30% appear in one source (any of
    the three) under the birth name (60%) or the double name "Partner-Birth" (40%).

SOURCES (each person is drawn independently: registry 80%, crm 60%, shop 50%; 96% are in one
at least). A within-source duplicate is the same person rendered again with its own noise.
  registry.csv, Dutch columns, reg_id: random 8-digit numbers. No e-mail, no phone.
    voornaam = all given names ("Johannes Petrus"), tussenvoegsel = Dutch lowercase particles
    ("van der"; "Van Damme", "Le Gall", "von der Heide" stay in achternaam), achternaam,
    geslacht M/V, geboortedatum YYYYMMDD, bsn, straat, huisnummer (with the unit: 12A, 12-2,
    "7 bus 3"), postcode (NL "1234AB" 85%, "1234 AB" 15%), woonplaats (official name:
    's-Gravenhage, 's-Hertogenbosch, München).
    Duplicates 1% of persons (10% of those three records). Names: typo 2% each, all upper
    case (names, street, city) 12% of records, city alone upper case 25%, stray space 1%,
    voornaam missing 1%, achternaam 0.5%. bsn: missing 4%, typo 3% (one digit changed 60%,
    two adjacent digits swapped 40%), written 123456789 80% / 123-45-6789 8% / 1234.56.789 7%
    / 123 456 789 5%. Birth date: missing 2%, day and month swapped 0.5% (applied only when
    the day is <= 12), one digit off 0.5% (still a valid date). Gender missing 2%, lower case
    5%. Whole address missing 3%, postcode alone 2%.
  crm.csv, English columns, contact_id CRM-0000000.
    full_name: "Jan de Vries" 55%, "DE VRIES, Jan" 15%, "de Vries, Jan" 10% (Dutch particle
    names there 5% as "Vries, Jan de"), "J. de Vries" 10%, all upper 5%, all lower 5%; a
    salutation in front ("Dhr.", "Mevr.", "Herr", "Frau", "Mme", "Mr", "Dr.") 2%; missing
    1%. The given name is the call name 80% when it differs from the formal one, another
    nickname 3% otherwise, a spelling variant 12% for Moroccan/Turkish names (Mohamed ->
    Mohammed); typo 6% per name part; accents stripped 20% (Müller -> Muller) and
    transliterated 10% (Müller -> Mueller) of non-ASCII names.
    email: the person's main address, or another one for people with several (7% of
    records), the family mailbox (15% when the household has one, 70% for members without
    an own address); missing ~18% in all (5% of existing ones dropped); case changed 8%,
    trailing spaces 4%, leading space 1%, typo 1%, gmail dots dropped (15% of dotted gmail addresses).
    phone: mobile, or the household landline (20% when both exist); missing ~14% in all
    (7% of existing dropped); typo 1%; formats "+31 6 1234 5678", "+31612345678",
    "0031612345678", "06-12345678", "0612345678", "06 12 34 56 78", "+31 (0)6 12345678"
    and German/Belgian equivalents; Dutch numbers in national form 3/7, foreign ones ~9%.
    address, one string "Kerkstraat 12, 1234 AB Amsterdam": missing 10%; street abbreviated
    (straat -> str., Straße -> Str./Strasse, Burgemeester -> Burg.) 10%; unit dropped 40%
    or written 12A / 12 A / 12-A / 12a; NL postcode without space 30%, lower case 5%; city
    alias 30% where one exists (Den Haag, Den Bosch, Koeln, Bruxelles, Luik); no comma before
    the postcode 1.5%; all lower case 3%.
    dob: missing 18%; ISO 1980-04-09 50%, 09.04.1980 25%, 9/4/1980 (d/m/y) 25%; day/month
    swapped 2% (only when the day is <= 12), one digit off 1%, impossible 0.5%: a day
    32-99 (27 -> 72), 30/31 February, 31 April/June/September/November, month 13-19.
    id_number: the national id for 20% of records (30% of them as 123-45-6789), typo 2%.
    last_modified: 2019-2024, 2015-2018 for records holding an old address.
    Duplicates 5% of persons; 40% of duplicates use another of the person's e-mails (none
    when there is no other).
  shop.csv, German columns, Kundennummer: random numbers. No birth date, no street.
    Anrede Herr/Frau (missing 15%), Vorname (missing 4%), Nachname (missing 0.5%; Dutch
    particle names "de Vries" 65%, "De Vries" 28%, "Vries" with Vorname "Jan de" 4%,
    "Vries de" 3%), E-Mail (~51% missing: 44% of existing ones dropped), Telefon (~18%
    missing; 12% dropped), PLZ (missing 8%; NL "1234AB" 50% / "1234 AB" 40% / "1234 ab"
    10%), Land (ISO code; missing 5%, lower case 5%). Call names, nicknames and spelling
    variants as in crm; typo 7% per name; accents stripped 35% of non-ASCII names; names all
    lower case 8%, all upper case 4%, stray space 4%. E-mail: case 3%, spaces 2%, typo
    1.5%, "+shop" tag on 5% of gmail addresses. Foreign phones in national form ~30%.
    Duplicates 4% of persons (a second account): 60% with another or a brand-new e-mail,
    20% without one.
"""

import argparse
import bisect
import csv
import os
import random
import sys
import time
import unicodedata
from collections import Counter
from datetime import date, timedelta

REF = date(2025, 6, 1)

# ----------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------

SURNAMES = {
    "nl": """de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit,
        Meijer, de Boer, Mulder, de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen, Dekker,
        Brouwer, de Wit, Dijkstra, Smits, de Graaf, van der Meer, van der Linden, Kok, Jacobs,
        de Haan, Vermeulen, van den Heuvel, van der Veen, van den Broek, de Bruijn, de Bruin,
        van der Heijden, Schouten, van Beek, Willems, van Vliet, van de Ven, Hoekstra, Maas,
        Verhoeven, Koster, van Dam, van der Wal, Prins, Blom, Huisman, Peeters, de Jonge,
        Kuipers, van Veen, Post, Kuiper, Veenstra, Kramer, van den Brink, Scholten, van Wijk,
        Postma, Martens, Vink, de Ridder, Jonker, van der Laan, Boer, Timmermans, Groen,
        Bosman, Wijnands, ter Horst, ten Brink, van 't Hof, Hofman, Evers, Koning, Dijkman,
        van Doorn, Sanders, Gerritsen, Lammers, Brinkman, Wouters, Hermans, Veldman, Wolters,
        Molenaar, Teunissen, Hoogendoorn, Stam, Zwart, Dekkers, Bouwman, Jongsma, Terpstra,
        van Rijn, Koopman, Driessen, op de Beek, in 't Veld, van Beusekom, Ruiter""",
    "vl": """Peeters, Janssens, Maes, Jacobs, Mertens, Willems, Claes, Goossens, Wouters, De Smet,
        Dubois, Hermans, Michiels, Lambrechts, Desmet, Dupont, Claeys, Pauwels, Vermeulen,
        Van Damme, De Clercq, Martens, Verstraete, Van den Broeck, Hendrickx, Smets, Cools,
        Aerts, Van de Velde, Leclercq, Stevens, De Backer, Devos, Vandenberghe, Segers,
        Van Dyck, Verhoeven, Coppens, Dierckx, Declercq, Vermeersch, Bogaerts, Lemmens,
        De Wilde, Van Hecke, Van Impe, Geerts, Baert, Verbeke, Vandamme, Huysmans, Van Acker,
        De Meyer, Wuyts, Van Hoof, Roels, Thys, Vanhove, Bracke, Verlinden""",
    "de": """Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann,
        Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann,
        Braun, Krüger, Hofmann, Hartmann, Lange, Schmitt, Werner, Schmitz, Krause, Meier,
        Lehmann, Schmid, Schulze, Maier, Köhler, Herrmann, König, Walter, Mayer, Huber, Kaiser,
        Fuchs, Peters, Lang, Scholz, Möller, Weiß, Jung, Hahn, Schubert, Vogel, Friedrich,
        Keller, Günther, Frank, Berger, Winkler, Roth, Beck, Lorenz, Baumann, Franke, Albrecht,
        Schuster, Simon, Ludwig, Böhm, Winter, Kraus, Martin, Schumacher, Krämer, Vogt, Stein,
        Jäger, Otto, Sommer, Groß, Seidel, Heinrich, Brandt, Haas, Schreiber, Graf, Schulte,
        Dietrich, Ziegler, Kuhn, Kühn, Pohl, Engel, Horn, Busch, Bergmann, Thomas, Voigt, Sauer,
        Arnold, Wolff, Pfeiffer, von der Heide, Weißmüller, Straßburger""",
    "fr": """Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau,
        Simon, Laurent, Lefèvre, Michel, Garcia, David, Bertrand, Roux, Vincent, Fournier,
        Morel, Girard, André, Lefebvre, Mercier, Dupont, Lambert, Bonnet, François, Martinez,
        Legrand, Garnier, Faure, Rousseau, Blanc, Guérin, Muller, Henry, Roussel, Nicolas,
        Perrin, Morin, Mathieu, Clément, Gauthier, Dumont, Lopez, Fontaine, Chevalier, Robin,
        Masson, Sanchez, Gérard, Nguyen, Boyer, Denis, Lemaire, Duval, Joly, Gautier, Roger,
        Roche, Roy, Noël, Meyer, Lucas, Meunier, Jean, Pérez, Marchand, Dufour, Blanchard,
        Marie, Barbier, Brun, Dumas, Brunet, Schmitt, Leroux, Colin, Fernandez, Pierre,
        Renard, Arnaud, Rolland, Caron, Aubert, Giraud, Leclerc, Vidal, Bourgeois, Renaud,
        Lemoine, Picard, Gaillard, Philippe, Lacroix, Fabre, Dupuis, Olivier, Le Gall,
        Rivière, Prévost, Carré, Benoît, Lecomte, Besançon""",
    "en": """Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson,
        Roberts, Robinson, Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall,
        Lewis, Harris, Clarke, Patel, Jackson, Wood, Turner, Martin, Cooper, Hill, Ward, Morris,
        Moore, Clark, Lee, King, Baker, Harrison, Morgan, Allen, James, Scott, Phillips, Watson,
        Davis, Parker, Price, Bennett, Young, Griffiths, Mitchell, Kelly, Cook, Carter,
        Richardson, Bailey, Collins, Bell, Shaw, Murphy, Miller, Cox, Richards, Khan, Marshall,
        Anderson, Simpson, Ellis, Adams, Singh, Wilkinson, Foster, Chapman, Powell, Webb,
        Rogers, Gray, Mason, Ali, Hunt, Campbell, Matthews, Owen, Palmer, Holmes, Mills,
        Barnes, Knight, Lloyd, Butler, Russell, Barker, Fisher, Stevens, Jenkins, Murray,
        O'Brien, O'Connor, McDonald, MacLeod""",
    "tr": """Yılmaz, Kaya, Demir, Şahin, Çelik, Yıldız, Yıldırım, Öztürk, Aydın, Özdemir,
        Arslan, Doğan, Kılıç, Aslan, Çetin, Kara, Koç, Kurt, Özkan, Şimşek, Polat, Özgür,
        Erdoğan, Güneş, Aksoy, Tekin, Bulut, Karaca, Acar, Taş""",
    "ma": """El Amrani, Benali, Bouzid, El Idrissi, Ait Ahmed, El Khatib, Boukhari, Ouali,
        Azzouzi, El Hamdaoui, Bakkali, Ziani, El Mourabit, Aboutaleb, Mansouri, Tahiri,
        El Yassini, Benhaddou, Haddouchi, Ait Taleb, Chaouch, El Ouali, Amrani, Bouali,
        Khattabi, Moussaoui, El Hilali, Lahlou, Saidi, Zerouali""",
}

GIVEN = {
    ("nl", "M"): """Jan, Johannes, Peter, Hendrik, Cornelis, Willem, Pieter, Gerrit, Jacobus,
        Wilhelmus, Dirk, Thomas, Daan, Sem, Lucas, Mark, Bas, Martijn, Dennis, Sander, Jeroen,
        Tim, Kevin, Robert, Michael, Richard, Marcel, Erik, Hans, Henk, Paul, Frank, Arjan,
        Ruud, Wouter, Stefan, Niels, Bram, Ruben, Jesse, Thijs, Lars, Joost, Maarten, Rob,
        Ronald, Edwin, Patrick, Vincent, Gerard, Adrianus, Petrus, Theodorus, Antonius,
        Franciscus, Gerardus, Albert, Arie, Bart, Koen, Luuk, Milan, Finn, Noah, Levi, Jasper,
        Stijn, Floris, Sjoerd, Teun, Guus, Job, Mees, Gijs, Hugo, Tijmen, Rutger, Jelle, Hidde,
        Sietse, Auke, Tjeerd, Joël, René""",
    ("nl", "F"): """Maria, Johanna, Anna, Cornelia, Elisabeth, Emma, Sophie, Julia, Anne, Lisa,
        Sanne, Laura, Femke, Eva, Lotte, Iris, Linda, Monique, Marieke, Ingrid, Petra, Esther,
        Wilhelmina, Hendrika, Margaretha, Catharina, Geertruida, Jacoba, Petronella, Adriana,
        Sandra, Mariska, Nicole, Kim, Anouk, Fleur, Tessa, Noor, Mila, Sara, Lieke, Roos, Evi,
        Fenna, Isa, Yvonne, Wendy, Ellen, Annemarie, Marloes, Saskia, Judith, Karin, Ria,
        Joke, Anja, Els, Marjolein, Hanneke, Nienke, Merel, Floor, Jet, Liv, Zoë, Chloë, Ilse,
        Inge, Marit, Renée, Hélène, Daphne""",
    ("vl", "M"): """Jan, Luc, Marc, Patrick, Dirk, Koen, Bart, Peter, Johan, Geert, Wim, Tom, Stijn,
        Pieter, Jef, Jozef, Frans, Lucas, Arthur, Louis, Noah, Jules, Wout, Lander, Senne,
        Robbe, Johannes, Hendrik, Cornelis, Willem, Gerrit, Jacobus, Kristof, Jens, Ruben,
        Thibault, Raf, Guido, Erik, Filip""",
    ("vl", "F"): """Maria, Anna, Els, An, Sofie, Katrien, Leen, Veerle, Griet, Hilde, Ann,
        Nathalie, Sarah, Emma, Louise, Marie, Elise, Lotte, Fien, Nore, Lien, Jana, Ine, Kaat,
        Elisabeth, Johanna, Catharina, Margaretha, Mieke, Greet, Inge, Kristien, Lieve, Tine,
        Hanne, Lore, Amélie, Noë""",
    ("de", "M"): """Thomas, Michael, Andreas, Stefan, Peter, Klaus, Wolfgang, Jürgen, Hans,
        Johannes, Frank, Christian, Markus, Matthias, Alexander, Sebastian, Daniel, Tobias,
        Florian, Jan, Uwe, Bernd, Dieter, Günter, Werner, Manfred, Horst, Helmut, Gerhard,
        Heinz, Karl, Friedrich, Josef, Maximilian, Paul, Leon, Lukas, Felix, Jonas, Elias,
        Noah, Ben, Finn, Moritz, Niklas, Tim, Dirk, Ralf, Holger, Sven, Jörg, Björn, Rüdiger,
        Torsten, Lars, Kai, Philipp, Benedikt, Fabian, Simon""",
    ("de", "F"): """Maria, Ursula, Monika, Petra, Sabine, Andrea, Claudia, Susanne, Stefanie,
        Julia, Katharina, Anna, Laura, Lena, Lea, Sophie, Marie, Hannah, Emma, Mia, Johanna,
        Elisabeth, Renate, Gisela, Helga, Ingrid, Brigitte, Karin, Birgit, Gabriele, Heike,
        Nicole, Sandra, Melanie, Christina, Franziska, Sarah, Lisa, Jana, Anja, Kerstin,
        Silke, Martina, Jutta, Margarete, Gertrud, Jessica, Vanessa, Michelle, Jasmin,
        Charlotte, Greta, Frieda, Jördis""",
    ("fr", "M"): """Jean, Pierre, Michel, Philippe, Alain, Nicolas, François, Christophe, Éric,
        Frédéric, Laurent, Stéphane, Sébastien, Olivier, Thierry, Patrick, Daniel, Julien,
        David, Thomas, Alexandre, Antoine, Guillaume, Mathieu, Maxime, Hugo, Lucas, Louis,
        Gabriel, Jules, Raphaël, Arthur, Léo, Théo, Jean-Pierre, Jean-Claude, Jean-Luc,
        Jean-Marc, Benoît, Jérôme, Cédric, Grégoire, Loïc, Gaël, Noël, André, René, Gérard,
        Bernard, Jacques, Henri, Rémi, Dominique""",
    ("fr", "F"): """Marie, Nathalie, Isabelle, Sylvie, Catherine, Françoise, Christine, Monique,
        Valérie, Sandrine, Sophie, Stéphanie, Céline, Émilie, Julie, Aurélie, Camille, Léa,
        Chloé, Manon, Inès, Zoé, Jade, Louise, Alice, Anaïs, Mélanie, Hélène, Brigitte,
        Danielle, Martine, Nicole, Véronique, Dominique, Marie-Claire, Anne-Sophie,
        Marie-Laure, Élodie, Agnès, Geneviève, Thérèse, Josiane, Océane, Maëlle, Clémence""",
    ("en", "M"): """James, John, Robert, Michael, William, David, Richard, Thomas, Christopher,
        Daniel, Matthew, Anthony, Mark, Paul, Steven, Andrew, Joshua, Kevin, Brian, George,
        Edward, Peter, Oliver, Harry, Jack, Charlie, Samuel, Benjamin, Alexander, Joseph,
        Jonathan, Stephen, Ian, Gary, Simon, Neil, Liam, Noah, Ethan, Ryan, Patrick, Sean,
        Connor""",
    ("en", "F"): """Mary, Elizabeth, Sarah, Emma, Olivia, Jessica, Emily, Charlotte, Sophie,
        Hannah, Margaret, Susan, Patricia, Jennifer, Linda, Karen, Helen, Rebecca, Rachel,
        Laura, Victoria, Katherine, Lucy, Amy, Claire, Deborah, Amelia, Grace, Chloe, Megan,
        Lauren, Ellie, Ava, Isla, Ruby, Zoe, Siobhan, Niamh, Aoife""",
    ("tr", "M"): """Mehmet, Mustafa, Ahmet, Ali, Hüseyin, Hasan, İbrahim, Murat, Ömer, Yusuf, Emre,
        Burak, Fatih, Kemal, Osman, Recep, Ramazan, Serkan, Volkan, Can, Barış, Oğuz, Çağlar,
        Tolga, Erdem, Gökhan""",
    ("tr", "F"): """Fatma, Ayşe, Emine, Hatice, Zeynep, Elif, Meryem, Şerife, Zehra, Sultan, Hülya,
        Özlem, Gül, Derya, Esra, Büşra, Merve, Ebru, Selin, Gizem, Aylin, Nazlı, Çiğdem, Şule""",
    ("ma", "M"): """Mohamed, Ahmed, Youssef, Mustapha, Said, Abdelkader, Rachid, Karim, Hassan,
        Omar, Khalid, Hamza, Bilal, Ayoub, Mehdi, Soufiane, Nordin, Driss, Abdel, Ismail""",
    ("ma", "F"): """Fatima, Khadija, Aicha, Naima, Samira, Malika, Nadia, Latifa, Hanane, Salma,
        Imane, Sanae, Yasmina, Houda, Loubna, Meryem, Zineb, Siham, Najat, Hafsa""",
}

NICKNAMES = {
    "Johannes": ["Jan", "Hans", "Johan", "Joop", "Hannes"], "Hendrik": ["Henk", "Rik"],
    "Cornelis": ["Kees", "Cor", "Cees"], "Wilhelmus": ["Wim", "Willem", "Pim"],
    "Willem": ["Wim", "Pim"], "Petrus": ["Piet", "Peter"], "Pieter": ["Piet"],
    "Jacobus": ["Jaap", "Koos"], "Gerardus": ["Gerard", "Gert", "Geert"],
    "Adrianus": ["Arie", "Adrie", "Ad"], "Theodorus": ["Theo", "Ruud", "Dorus"],
    "Antonius": ["Toon", "Ton", "Anton"], "Franciscus": ["Frans", "Frank"], "Gerrit": ["Gert"],
    "Jozef": ["Jef", "Jos"], "Johanna": ["Anneke", "Joke", "Hanneke", "Jo"],
    "Maria": ["Marieke", "Mieke", "Ria", "Marie"], "Wilhelmina": ["Willy", "Mien", "Wilma"],
    "Cornelia": ["Corrie", "Nel"], "Elisabeth": ["Els", "Lies", "Betty", "Lisa", "Elise"],
    "Catharina": ["Karin", "Tineke", "Ina"], "Geertruida": ["Truus", "Trudy"],
    "Hendrika": ["Riek", "Henny", "Rika"], "Jacoba": ["Coby", "Co"],
    "Margaretha": ["Margriet", "Greet", "Grietje"], "Petronella": ["Nel", "Nelleke", "Ellen"],
    "Adriana": ["Janny", "Adrie"], "Friedrich": ["Fritz"], "Wolfgang": ["Wolf"],
    "Josef": ["Sepp", "Jupp"], "Katharina": ["Katja", "Kathi", "Käthe"],
    "Margarete": ["Grete", "Gretel"], "Stefanie": ["Steffi"], "Susanne": ["Susi"],
    "Franziska": ["Franzi"], "Andreas": ["Andi"], "Matthias": ["Matze"],
    "Christian": ["Chris"], "Alexander": ["Alex", "Sascha"], "Michael": ["Micha", "Mike"],
    "Thomas": ["Tom"], "Maximilian": ["Max"], "Gabriele": ["Gabi"], "Frédéric": ["Fred"],
    "Nicolas": ["Nico"], "Christophe": ["Chris"], "Catherine": ["Cathy"], "Isabelle": ["Isa"],
    "Stéphanie": ["Steph"], "Alexandre": ["Alex"], "Robert": ["Bob", "Rob", "Bobby"],
    "William": ["Bill", "Will", "Liam"], "Elizabeth": ["Liz", "Beth", "Betty", "Lizzie"],
    "Margaret": ["Maggie", "Peggy", "Meg"], "Richard": ["Rick", "Dick", "Richie"],
    "James": ["Jim", "Jimmy", "Jamie"], "John": ["Jack", "Johnny"], "Christopher": ["Chris"],
    "Daniel": ["Dan", "Danny"], "Matthew": ["Matt"], "Anthony": ["Tony"], "Joseph": ["Joe"],
    "Edward": ["Ed", "Ted", "Eddie"], "Samuel": ["Sam"], "Benjamin": ["Ben"],
    "Jonathan": ["Jon"], "Stephen": ["Steve"], "Rebecca": ["Becky"], "Victoria": ["Vicky"],
    "Susan": ["Sue"], "Patricia": ["Pat", "Trish"], "Deborah": ["Debbie", "Deb"],
    "Katherine": ["Kate", "Katie", "Kathy"], "Jennifer": ["Jenny", "Jen"],
}

SPELLING_VARIANTS = {
    "Mohamed": ["Mohammed", "Mohamad", "Muhammad"], "Mustapha": ["Mustafa"],
    "Youssef": ["Yousef", "Youssouf"], "Said": ["Saïd"], "Aicha": ["Aïcha", "Aisha"],
    "Khadija": ["Khadidja"], "Naima": ["Naïma"], "Ismail": ["Ismaïl"],
    "Hüseyin": ["Huseyin", "Hussein"], "Meryem": ["Meriem", "Maryam"],
    "Abdelkader": ["Abdelkhader", "Abdul Kader"], "Mehmet": ["Mehmed"],
}

# Long-tail surname parts per culture: (prefixes, roots, suffixes).
_NL_ROOTS = """Berg Dijk Veen Hoek Bosch Brink Broek Kamp Horst Haar Wijk Hout Meer Zand Beek Hof
    Laar Loo Mol Kooi Schaap Sluis Stege Wal Heuvel Akker Weide Bruin Groen Wit Klein Groot
    Jong Smit Boer Kuiper Visser Molen Ploeg Haan Vos Wolf Beer Kraai Zwaan Valk Mees Vink
    Roos Eik Linde Esch Wilg Hulst Brug Dam Dorp Kerk Toren Poort Veld Rijn Maas Waal Lek
    Vecht Zijl Gouw Holt Loon Ommen Haren Lochem Eerde Assen Burg Steen Hamer Knol Kool Raap
    Pol Ruijter Kramer Koster Schipper Snijder Wever Timmer Boom Brouw Huis Ham Geest Duin Zee
    Noord Zuid Oost West Vree Riet Bies Gras Heide Moer Lage Hooge Stolk Buren Grave Voorst"""
TAIL_PARTS = {
    "nl": ([""] * 12 + ["van ", "de ", "van de ", "van der ", "van den ", "ter ", "ten ",
                        "Ver", "op den "],
           _NL_ROOTS.split(),
           ["", "", "", "s", "man", "ma", "stra", "inga", "huis", "kamp", "hof", "veld",
            "beek", "ink", "horst", "ers", "mans", "el", "er", "sen", "werf", "gaarde"]),
    "vl": (["", "", "Van ", "De ", "Van de ", "Van den ", "Vanden", "Ver", "Ver"],
           _NL_ROOTS.split(),
           ["", "", "s", "e", "ens", "x", "ckx", "aert", "eels", "ghe", "ier", "mans"]),
    "de": ([""], """Stein Wald Berg Hof Feld Bach Brunn Eich Lind Rosen Schön Grün Kirch
        Mühl Wies Hoch Alt Neu Fried Hart Kolb Lieb Reich Sonn Wein Holz Acker Brand Eisen
        Gold Silber Bären Fuchs Hasen Adler Falk Rabe Stock Blum Kram Wagen Rad Dorn Hecken
        Busch Baum Tann Fichten Buch Erl Ulm Esch Kessel Horn Korn Weiß Roth Schwarz Braun
        Kaiser König Herz Kraft Stark Lang Kurz Groß Klein Bieder Ober Unter Nieder Sauer
        Süß Dürr Hüb Schütz Zell""".split(),
           ["er", "mann", "ner", "ler", "inger", "berger", "bauer", "meier", "huber", "feld",
            "hardt", "hofer", "müller", "schmidt", "stetter", "richter", "brecht", "wald", "ke",
            "el", "dorf", "mayr", "häuser", "bichler", "städter", "stein"]),
    "fr": (["", "", "", "", "Le ", "La ", "Du ", "De ", "Des "], """Bois Chêne Fontaine Roche
        Pierre Mont Val Champ Pré Moulin Pont Bourg Ville Côte Lac Berger Boucher Boulanger
        Charron Fèvre Meunier Mercier Tisserand Blanc Brun Petit Grand Bon Beau Fort Martel
        Marchand Vigne Poirier Lambert Renaud Giraud Thibault Guill Gaut Hugu Rich Bern
        Berthel Vach Chap Cham Mor Mar Lef Duch Gir Bouch Chauv Dev Mich Ferr Roub""".split(),
           ["", "in", "ot", "et", "eau", "ier", "and", "ard", "on", "ac", "at", "elle", "ette",
            "ois", "aud", "ière", "oux", "y"]),
    "en": ([""], """Ash Black Brad Brook Burn Cart Clay Craw Dal Den Dun East Fair Fox Gold
        Green Hal Haw Hol Kings Lang Lin Mar Mid Nor Oak Pem Red Ridge Roth Sal Sher Stan Stock
        Thorn Wal West Whit Wood Wor Brom Cum Ed Gar Her Hut Lock Mel Mor Pen Rad Shel Sut Tal
        Well Wick Ains Bar Chad Dray Elm Fern Gos Hat""".split(),
           ["ton", "ley", "ford", "wood", "field", "son", "well", "ham", "by", "worth", "land",
            "more", "man", "er", "ridge", "hill", "stone", "bury", "croft", "dale", "wick"]),
    "tr": ([""], """Ak Kara Öz Gül Ay Er Yıl Can Tek Bal Demir Çak Şen Gün Kılıç Tur Uç Yüce
        Sarı Ton Ateş Bulut Deniz Erdoğ Güven Kaplan Keskin Polat Soy Tunç Ulu Yavuz Ilgaz Koca
        Baş Çoban Dur""".split(),
           ["", "soy", "türk", "demir", "han", "taş", "kaya", "oğlu", "can", "er", "el", "gül",
            "ay", "men", "kan", "dağ", "bay", "ci", "yol", "ok"]),
    "ma": (["", "", "El ", "El ", "Ait ", "Ben ", "Bou"], """Amrani Idrissi Alaoui Hamdaoui
        Mansouri Tahiri Ziani Haddad Ouali Azzouz Kassimi Fassi Bakkali Mourabit Yassini
        Khattabi Hilali Moussaoui Ghazi Hajji Jabri Karimi Lahlou Marzouki Naciri Rifi Saidi
        Touzani Wahbi Zerouali Ouahabi Boujdaini Kaddouri Messaoudi Taouil Yahyaoui""".split(),
           [""]),
}

HEAD_SHARE = {"nl": 0.15, "vl": 0.15, "de": 0.22, "fr": 0.18, "en": 0.18, "tr": 0.45, "ma": 0.25}
SECOND_GIVEN_RATE = {"nl": 0.4, "vl": 0.4, "de": 0.4, "fr": 0.4, "en": 0.5, "tr": 0.1, "ma": 0.1}
TAKES_NAME = {"nl": 0.45, "vl": 0.1, "de": 0.8, "fr": 0.8, "en": 0.8, "tr": 0.9, "ma": 0.1}
PARTICLES = ("van", "de", "der", "den", "ter", "ten", "'t", "op", "in", "het", "te")

# ----------------------------------------------------------------------------------------------
# Places: (official name, alias, weight, postcode low, high, landline area code, street style)
# ----------------------------------------------------------------------------------------------

CITIES = {
    "NL": [
        ("Amsterdam", None, 8.9, 1011, 1109, "20", "nl"), ("Rotterdam", None, 6.7, 3011, 3089, "10", "nl"),
        ("'s-Gravenhage", "Den Haag", 5.6, 2491, 2599, "70", "nl"), ("Utrecht", None, 3.7, 3511, 3585, "30", "nl"),
        ("Eindhoven", None, 2.4, 5611, 5658, "40", "nl"), ("Groningen", None, 2.4, 9711, 9747, "50", "nl"),
        ("Tilburg", None, 2.3, 5011, 5049, "13", "nl"), ("Almere", None, 2.2, 1311, 1363, "36", "nl"),
        ("Breda", None, 1.9, 4811, 4839, "76", "nl"), ("Nijmegen", None, 1.8, 6511, 6546, "24", "nl"),
        ("Haarlem", None, 1.7, 2011, 2037, "23", "nl"), ("Arnhem", None, 1.7, 6811, 6846, "26", "nl"),
        ("Enschede", None, 1.6, 7511, 7548, "53", "nl"), ("Amersfoort", None, 1.6, 3811, 3834, "33", "nl"),
        ("Apeldoorn", None, 1.6, 7311, 7339, "55", "nl"), ("Zaandam", "Zaanstad", 1.5, 1501, 1509, "75", "nl"),
        ("'s-Hertogenbosch", "Den Bosch", 1.6, 5211, 5248, "73", "nl"), ("Zwolle", None, 1.3, 8011, 8043, "38", "nl"),
        ("Leiden", None, 1.3, 2311, 2334, "71", "nl"), ("Maastricht", None, 1.3, 6211, 6229, "43", "nl"),
        ("Dordrecht", None, 1.2, 3311, 3329, "78", "nl"), ("Zoetermeer", None, 1.2, 2711, 2729, "79", "nl"),
        ("Ede", None, 1.2, 6711, 6718, "318", "nl"), ("Leeuwarden", "Ljouwert", 1.2, 8911, 8939, "58", "nl"),
        ("Alkmaar", None, 1.1, 1811, 1826, "72", "nl"), ("Delft", None, 1.0, 2611, 2629, "15", "nl"),
        ("Deventer", None, 1.0, 7411, 7439, "570", "nl"), ("Venlo", None, 1.0, 5911, 5928, "77", "nl"),
        ("Helmond", None, 0.9, 5701, 5709, "492", "nl"), ("Hilversum", None, 0.9, 1211, 1223, "35", "nl"),
        ("Heerlen", None, 0.9, 6411, 6422, "45", "nl"), ("Oss", None, 0.9, 5341, 5349, "412", "nl"),
        ("Roosendaal", None, 0.8, 4701, 4709, "165", "nl"), ("Purmerend", None, 0.8, 1441, 1448, "299", "nl"),
        ("Schiedam", None, 0.8, 3111, 3125, "10", "nl"), ("Gouda", None, 0.7, 2801, 2809, "182", "nl"),
        ("Assen", None, 0.7, 9401, 9409, "592", "nl"), ("Middelburg", None, 0.5, 4331, 4339, "118", "nl"),
        ("Bergen op Zoom", None, 0.7, 4611, 4625, "164", "nl"), ("Den Helder", None, 0.6, 1781, 1789, "223", "nl"),
        ("IJsselstein", None, 0.4, 3401, 3404, "30", "nl"), ("Amstelveen", None, 0.9, 1181, 1189, "20", "nl"),
        ("Nieuwegein", None, 0.6, 3431, 3439, "30", "nl"), ("Zeist", None, 0.6, 3701, 3709, "30", "nl"),
        ("Alphen aan den Rijn", None, 0.7, 2401, 2409, "172", "nl"), ("Hoofddorp", None, 0.5, 2131, 2136, "23", "nl"),
        ("Lelystad", None, 0.6, 8211, 8245, "320", "nl"), ("Hoorn", None, 0.6, 1621, 1628, "229", "nl"),
        ("Emmen", None, 0.8, 7811, 7833, "591", "nl"), ("Sneek", "Snits", 0.3, 8601, 8608, "515", "nl"),
        ("Roermond", None, 0.4, 6041, 6046, "475", "nl"), ("Sittard", None, 0.4, 6131, 6137, "46", "nl"),
        ("Hengelo", None, 0.6, 7551, 7559, "74", "nl"), ("Almelo", None, 0.5, 7601, 7609, "546", "nl"),
        ("Woerden", None, 0.4, 3441, 3449, "348", "nl"), ("Weert", None, 0.4, 6001, 6006, "495", "nl"),
        ("Ouderkerk aan de Amstel", None, 0.1, 1191, 1191, "20", "nl"), ("Sint-Oedenrode", None, 0.15, 5491, 5492, "413", "nl"),
        ("Egmond aan Zee", None, 0.05, 1931, 1931, "72", "nl"), ("Ootmarsum", None, 0.05, 7631, 7631, "541", "nl"),
        ("Wijk bij Duurstede", None, 0.2, 3961, 3962, "343", "nl"), ("Kapelle", None, 0.1, 4421, 4421, "113", "nl"),
    ],
    "DE": [
        ("Berlin", None, 10.0, 10115, 14199, "30", "de"), ("Hamburg", None, 5.2, 20095, 22769, "40", "de"),
        ("München", "Muenchen", 4.2, 80331, 81929, "89", "de"), ("Köln", "Koeln", 3.1, 50667, 51149, "221", "de"),
        ("Frankfurt am Main", "Frankfurt", 2.1, 60306, 60599, "69", "de"), ("Stuttgart", None, 1.8, 70173, 70619, "711", "de"),
        ("Düsseldorf", "Duesseldorf", 1.8, 40210, 40629, "211", "de"), ("Leipzig", None, 1.7, 4103, 4357, "341", "de"),
        ("Dortmund", None, 1.7, 44135, 44388, "231", "de"), ("Essen", None, 1.7, 45127, 45359, "201", "de"),
        ("Bremen", None, 1.6, 28195, 28779, "421", "de"), ("Dresden", None, 1.6, 1067, 1328, "351", "de"),
        ("Hannover", None, 1.4, 30159, 30669, "511", "de"), ("Nürnberg", "Nuernberg", 1.4, 90402, 90491, "911", "de"),
        ("Duisburg", None, 1.4, 47051, 47279, "203", "de"), ("Bochum", None, 1.0, 44787, 44894, "234", "de"),
        ("Münster", "Muenster", 0.9, 48143, 48167, "251", "de"), ("Aachen", None, 0.7, 52062, 52080, "241", "de"),
        ("Bonn", None, 0.9, 53111, 53229, "228", "de"), ("Mönchengladbach", None, 0.7, 41061, 41239, "2161", "de"),
        ("Krefeld", None, 0.6, 47798, 47839, "2151", "de"), ("Kleve", None, 0.15, 47533, 47533, "2821", "de"),
        ("Emmerich am Rhein", "Emmerich", 0.1, 46446, 46446, "2822", "de"), ("Gronau (Westf.)", "Gronau", 0.1, 48599, 48599, "2562", "de"),
        ("Görlitz", None, 0.15, 2826, 2828, "3581", "de"), ("Weißenfels", "Weissenfels", 0.1, 6667, 6667, "3443", "de"),
    ],
    "BE": [
        ("Antwerpen", "Anvers", 5.0, 2000, 2660, "3", "nl"), ("Gent", "Gand", 2.6, 9000, 9052, "9", "nl"),
        ("Brussel", "Bruxelles", 5.0, 1000, 1210, "2", "bx"), ("Charleroi", None, 2.0, 6000, 6061, "71", "fr"),
        ("Liège", "Luik", 2.0, 4000, 4032, "4", "fr"), ("Brugge", "Bruges", 1.2, 8000, 8380, "50", "nl"),
        ("Namur", "Namen", 1.1, 5000, 5101, "81", "fr"), ("Leuven", "Louvain", 1.0, 3000, 3012, "16", "nl"),
        ("Mechelen", "Malines", 0.9, 2800, 2812, "15", "nl"), ("Aalst", "Alost", 0.9, 9300, 9320, "53", "nl"),
        ("Hasselt", None, 0.8, 3500, 3512, "11", "nl"), ("Genk", None, 0.7, 3600, 3600, "89", "nl"),
        ("Kortrijk", "Courtrai", 0.8, 8500, 8511, "56", "nl"), ("Mons", "Bergen", 0.9, 7000, 7034, "65", "fr"),
        ("Tournai", "Doornik", 0.7, 7500, 7548, "69", "fr"),
    ],
}
COUNTRY_WEIGHTS = [("NL", 0.62), ("DE", 0.25), ("BE", 0.13)]
CULTURE_MIX = {
    "NL": [("nl", 0.80), ("tr", 0.05), ("ma", 0.05), ("en", 0.04), ("de", 0.03), ("vl", 0.02), ("fr", 0.01)],
    "DE": [("de", 0.82), ("tr", 0.09), ("en", 0.03), ("nl", 0.03), ("fr", 0.02), ("ma", 0.01)],
    "BE": [("vl", 0.48), ("fr", 0.38), ("ma", 0.06), ("tr", 0.03), ("nl", 0.02), ("en", 0.02), ("de", 0.01)],
}
COUNTRY_CODE = {"NL": "31", "DE": "49", "BE": "32"}

STREET_PARTS = {
    "nl": ("""Kerk School Molen Dorps Stations Juliana Beatrix Wilhelmina Nieuwe Hoofd Markt Haven
        Kanaal Park Tuin Bos Berken Eiken Beuken Linden Kastanje Populieren Wilgen Esdoorn
        Acacia Rozen Tulpen Lelie Narcissen Seringen Meidoorn Merel Lijster Spreeuwen Zwaluw
        Kievit Reiger Vinken Mussen Zeeman Bakkers Smids Brouwers Vondel Rembrandt Vermeer
        Hobbema Rubens Erasmus Spinoza Huygens Lorentz Thorbecke Oranje Nassau Frederik Mauritz
        Emma Sophia Bernhard Amstel Rijn Maas IJssel Vecht Zuid Noord Oost West Hoog Laag Lange
        Korte Brede Achter Voor Heren Keizers Prinsen Zand Veen Heide Akker Weide Koren Tarwe
        Rogge Vlas Klaver Zon Maan Sterren Regenboog Gasthuis Klooster Begijnen Poort Wal
        Vesting Bleek Ververs Lind Iepen Hazel Zwanen Ganzen Meeuwen Duiven Valken""".split(),
           ["straat"] * 8 + ["laan"] * 4 + ["weg"] * 3 + ["plein", "gracht", "singel", "kade",
            "dijk", "hof", "dreef", "pad", "steeg", "erf", "veld", "park"],
           ["Burgemeester", "Dokter", "Pastoor", "Prins", "Koningin", "Graaf", "Generaal",
            "Professor", "Meester", "Kapitein"]),
    "de": ("""Haupt Schul Garten Bahnhof Dorf Berg Birken Linden Kirch Wald Ring Goethe Schiller
        Mozart Beethoven Bach Heine Lessing Kant Friedrich Wilhelm Luisen Sophien Marien Kaiser
        König Markt Mühlen Brunnen Wiesen Feld Acker Rosen Tulpen Nelken Flieder Ahorn Buchen
        Eichen Tannen Fichten Kiefern Erlen Eschen Ulmen Amsel Drossel Finken Lerchen Meisen
        Schwalben Sonnen Sternen Rhein Main Elbe Weser Oder Donau Neckar Isar Ost West Süd Nord
        Hoch Tal Burg Schloss Kloster Post Industrie Gewerbe Hafen Brücken Tor Turm Mühl Gärtner
        Schäfer Jäger Fischer Weber Bäcker Schmiede Hopfen Weinberg Rüben""".split(),
           ["straße"] * 10 + ["weg"] * 4 + ["allee", "platz", "gasse", "ring", "damm", "ufer",
            "steig", "pfad"],
           ["Konrad-Adenauer-", "Otto-Hahn-", "Max-Planck-", "Robert-Koch-", "Willy-Brandt-",
            "Friedrich-Ebert-", "Karl-Marx-", "Heinrich-Heine-", "Albert-Schweitzer-",
            "Ludwig-Erhard-", "Theodor-Heuss-", "Rudolf-Diesel-", "Carl-Benz-"]),
    "fr": ("""de la Gare|du Moulin|des Écoles|de l'Église|du Château|de la Station|des Champs|
        du Marché|de la Paix|de la Liberté|du Parc|des Roses|des Lilas|du Centre|de la Fontaine|
        du Pont|de la Colline|des Prés|du Bois|de Namur|de Bruxelles|de Liège|de Mons|de Tournai|
        Victor Hugo|Jean Jaurès|Pasteur|Émile Zola|Albert Ier|Léopold II|Louise|Saint-Lambert|
        Haute|Basse|Neuve|Royale|des Carmes|des Tanneurs|de la Source|du Calvaire|de la Croix|
        des Vignes|du Village|de France|des Alliés|de Fléron|des Peupliers|des Chênes|
        de l'Abbaye|du Onze Novembre|Général Leman|de Herve|de Waterloo|des Glycines""".split("|"),
           ["Rue"] * 10 + ["Avenue"] * 3 + ["Chaussée", "Boulevard", "Place", "Allée", "Impasse",
            "Quai", "Clos"],
           []),
}

STREET_PARTS["fr"] = ([" ".join(x.split()) for x in STREET_PARTS["fr"][0]],) + STREET_PARTS["fr"][1:]

# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


class Weighted:
    """Weighted choice by cumulative weights (bisect on one random number)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items, weights):
        self.items = list(items)
        self.cum = []
        t = 0.0
        for w in weights:
            t += w
            self.cum.append(t)
        self.total = t

    def pick(self, rng):
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def split_list(text):
    seen, out = set(), []
    for x in text.replace("\n", " ").split(","):
        x = " ".join(x.split())
        if x and x not in seen:
            seen.add(x)
            out.append(x)
    return out


def zipf(n, s):
    return [1.0 / (r ** s) for r in range(1, n + 1)]


_FOLD = {"ß": "ss", "ı": "i", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
         "ł": "l", "Ł": "L", "İ": "I", "đ": "d"}
_TRANSLIT = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
_fold_cache = {}


def fold(s):
    """Accents stripped: Müller -> Muller, Çelik -> Celik, Yılmaz -> Yilmaz."""
    r = _fold_cache.get(s)
    if r is None:
        t = "".join(_FOLD.get(c, c) for c in s)
        t = unicodedata.normalize("NFKD", t)
        r = "".join(c for c in t if not unicodedata.combining(c))
        _fold_cache[s] = r
    return r


def translit(s):
    """German transliteration: Müller -> Mueller, Straße -> Strasse; other accents stripped."""
    return fold("".join(_TRANSLIT.get(c, c) for c in s))


_KEYS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGH = {}
for _r, _row in enumerate(_KEYS):
    for _c, _ch in enumerate(_row):
        ns = []
        for dr in (-1, 0, 1):
            rr = _r + dr
            if 0 <= rr < 3:
                for dc in (-1, 0, 1):
                    cc = _c + dc
                    if (dr or dc) and 0 <= cc < len(_KEYS[rr]):
                        ns.append(_KEYS[rr][cc])
        _NEIGH[_ch] = ns


def typo(s, rng):
    """One edit: substitute (keyboard neighbour), delete, insert (doubled or neighbour letter)
    or transpose two adjacent letters. Only letters are touched."""
    pos = [i for i, c in enumerate(s) if c.isalpha()]
    if len(pos) < 3:
        return s
    i = pos[rng.randrange(len(pos))]
    c = s[i]
    op = rng.random()
    if op < 0.3:
        n = _NEIGH.get(c.lower())
        r = rng.choice(n) if n else "e"
        return s[:i] + (r.upper() if c.isupper() else r) + s[i + 1:]
    if op < 0.55:
        return s[:i] + s[i + 1:]
    if op < 0.8:
        n = _NEIGH.get(c.lower())
        r = c.lower() if (rng.random() < 0.5 or not n) else rng.choice(n)
        return s[:i + 1] + r + s[i + 1:]
    j = i + 1 if i + 1 < len(s) and s[i + 1].isalpha() else i - 1
    if j < 0 or not s[j].isalpha() or s[j] == c:
        return s[:i] + s[i + 1:]
    a, b = min(i, j), max(i, j)
    return s[:a] + s[b] + s[a] + s[b + 1:]


def digit_typo(d, rng):
    """A digit string with one digit changed (60%) or two adjacent different digits swapped."""
    if rng.random() < 0.4:
        pairs = [i for i in range(len(d) - 1) if d[i] != d[i + 1]]
        if pairs:
            i = rng.choice(pairs)
            return d[:i] + d[i + 1] + d[i] + d[i + 2:]
    i = rng.randrange(len(d))
    c = str((int(d[i]) + rng.randrange(1, 10)) % 10)
    return d[:i] + c + d[i + 1:]


def csv_field(s):
    if any(c in s for c in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


def csv_line(fields):
    return ",".join(csv_field(f) for f in fields)


def split_particles(family):
    """'van der Berg' -> ('van der', 'Berg'); 'De Smet' -> ('', 'De Smet')."""
    words = family.split(" ")
    k = 0
    while k < len(words) - 1 and words[k] in PARTICLES:
        k += 1
    return " ".join(words[:k]), " ".join(words[k:])


# ----------------------------------------------------------------------------------------------
# The world
# ----------------------------------------------------------------------------------------------


class Person:
    __slots__ = ("pid", "hh", "culture", "sex", "given", "given2", "call", "family",
                 "birth_family", "birth", "nid", "mobile", "emails", "is_child", "maiden_src",
                 "email_src")


class Household:
    __slots__ = ("country", "addr", "old_addr", "stale_src", "landline", "family_email",
                 "members")


class World:
    def __init__(self, n, rng):
        self.n = n
        self.rng = rng
        self.countries = Weighted([c for c, _ in COUNTRY_WEIGHTS], [w for _, w in COUNTRY_WEIGHTS])
        self.cities = {c: Weighted(list(range(len(v))), [x[2] for x in v]) for c, v in CITIES.items()}
        self.culture_mix = {c: Weighted([k for k, _ in v], [w for _, w in v]) for c, v in CULTURE_MIX.items()}
        self.surnames = {}
        for cul, text in SURNAMES.items():
            head = split_list(text)
            tail, tw = self._tail(cul, head, n)
            # the head list of real names carries HEAD_SHARE of the persons (Zipf 0.5 inside
            # it: "de Jong" ~0.8% of Dutch persons); the generated tail the rest.
            hw = zipf(len(head), 0.5)
            hs = sum(hw)
            share = HEAD_SHARE[cul]
            w = [x * share / hs for x in hw] + [x * (1 - share) for x in tw]
            self.surnames[cul] = Weighted(head + tail, w)
        self.given = {}
        for key, text in GIVEN.items():
            names = split_list(text)
            self.given[key] = Weighted(names, zipf(len(names), 0.45))
        # streets per city, created lazily: list of (name, max_number)
        self.streets = {}
        self.street_names_used = {}
        self.addr_used = set()
        self.buildings = {}
        self.nl_postcodes = {}
        self.nl_pc_used = set()
        self.street_pc = {}
        self.phones_used = set()
        self.email_used = set()
        self.companies = self._companies(max(50, n // 40))

    def _tail(self, cul, head, n):
        """Generated surnames and their weights (summing to 1). Each prefix ("", "van der",
        "El ", ...) keeps its share of the prefix list, however many names it yields; within
        a prefix, Zipf 0.3 in a random order."""
        pre, roots, suf = TAIL_PARTS[cul]
        pre_share = Counter(pre)
        seen = set(head)
        groups = {}
        for p in pre_share:
            names = []
            for r in roots:
                for s in suf:
                    name = p + r.lower() + s if p in ("Ver", "Vanden", "Bou") else p + r + s
                    if name not in seen:
                        seen.add(name)
                        names.append(name)
                if p == "" and cul in ("nl", "vl", "de", "en"):
                    # compounds of two roots: Bergveen, Steinwald, Blackbrook
                    for r2 in roots:
                        if r2 != r:
                            for s in suf[:4]:
                                name = r + r2.lower() + s
                                if name not in seen:
                                    seen.add(name)
                                    names.append(name)
            self.rng.shuffle(names)
            groups[p] = names
        total = sum(len(v) for v in groups.values())
        size = max(300, min(total, n // 3))
        out, weights = [], []
        for p, names in groups.items():
            k = max(1, round(size * len(names) / total))
            names = names[:k]
            zw = zipf(len(names), 0.3)
            zs = sum(zw)
            mass = pre_share[p] / len(pre)
            out.extend(names)
            weights.extend(x * mass / zs for x in zw)
        return out, weights

    def _companies(self, k):
        a = ["tech", "bouw", "logistiek", "zorg", "data", "groen", "smart", "metaal", "media",
             "finance", "consult", "food", "print", "energie", "auto", "haus", "werk", "net",
             "soft", "care", "trans", "agro", "bau", "design", "legal", "retail"]
        b = ["nova", "delta", "prima", "alpha", "noord", "rijn", "maas", "euro", "inter",
             "holland", "flevo", "brabant", "rhein", "west", "oost", "central", "global",
             "city", "regio", "top", "first", "blue", "green"]
        tlds = ["nl", "nl", "nl", "com", "de", "be", "eu"]
        out, seen = [], set()
        while len(out) < k:
            d = self.rng.choice(b) + self.rng.choice(["", "-"]) + self.rng.choice(a)
            if self.rng.random() < 0.3:
                d += str(self.rng.randrange(1, 99))
            d += "." + self.rng.choice(tlds)
            if d not in seen:
                seen.add(d)
                out.append(d)
        return out

    # -- addresses ---------------------------------------------------------------------------

    def _street_list(self, country, ci):
        key = (country, ci)
        lst = self.streets.get(key)
        if lst is None:
            city = CITIES[country][ci]
            expected = self.n / 2.1 * dict(COUNTRY_WEIGHTS)[country] * city[2] / sum(x[2] for x in CITIES[country])
            k = int(expected / 30) + 8
            lst = []
            used = set()
            style = city[6]
            tries = 0
            while len(lst) < k and tries < k * 20:
                tries += 1
                st = style if style != "bx" else self.rng.choice(("nl", "fr"))
                name = self._street_name(st)
                if name in used:
                    continue
                used.add(name)
                lst.append((name, self.rng.choice((12, 24, 40, 60, 90, 140, 220, 320)), st))
            self.streets[key] = lst
        return lst

    def _street_name(self, style):
        rng = self.rng
        roots, sufs, persons = STREET_PARTS[style]
        if style == "fr":
            return rng.choice(sufs) + " " + rng.choice(roots)
        if style == "de":
            x = rng.random()
            if x < 0.1:
                return rng.choice(persons) + rng.choice(("Straße", "Straße", "Weg", "Platz", "Allee"))
            if x < 0.16:
                return rng.choice(("Am ", "An der ", "Im ", "Auf dem ")) + rng.choice(roots) + rng.choice(("hof", "feld", "berg", "bach", "garten", "acker"))
            return rng.choice(roots) + rng.choice(sufs)
        x = rng.random()
        if x < 0.12:
            fam = rng.choice(split_list(SURNAMES["nl"])[:60])
            part, core = split_particles(fam)
            return rng.choice(persons) + " " + (part + " " if part else "") + core + rng.choice(("straat", "laan", "weg", "plein", "kade"))
        if x < 0.16:
            return "Laan van " + rng.choice(("Meerdervoort", "Nieuw Oost-Indië", "Vollenhove", "Chartroise", "Spartaan", "Zuid-Hoorn", "de Mensenrechten"))
        return rng.choice(roots) + rng.choice(sufs)

    def new_address(self, country, ci=None):
        rng = self.rng
        if ci is None:
            ci = self.cities[country].pick(rng)
        city = CITIES[country][ci]
        streets = self._street_list(country, ci)
        unit = ""
        # apartments: NL/BE units numbered; DE: several households at the same number
        bkey = (country, ci)
        blds = self.buildings.setdefault(bkey, [])
        apartment_rate = {"NL": 0.14, "BE": 0.14, "DE": 0.15}[country]
        if rng.random() < apartment_rate:
            if blds and rng.random() < 0.75:
                b = blds[rng.randrange(len(blds))]
            else:
                for _ in range(50):
                    si = rng.randrange(len(streets))
                    num = rng.randint(1, streets[si][1])
                    if (country, ci, si, num, "") not in self.addr_used:
                        break
                self.addr_used.add((country, ci, si, num, ""))
                b = [si, num, 0, rng.choice(("num", "letter")) if country == "NL" else "bus"]
                blds.append(b)
            b[2] += 1
            si, num = b[0], b[1]
            if country == "DE":
                unit = ""
            elif b[3] == "num":
                unit = "-" + str(b[2])
            elif b[3] == "letter":
                unit = "ABCDEFGHJKLMNPQRSTUVWXYZ"[(b[2] - 1) % 24]
            else:
                unit = " bus " + str(b[2])
        else:
            for _ in range(200):
                si = rng.randrange(len(streets))
                num = rng.randint(1, streets[si][1])
                k = (country, ci, si, num, "")
                if k not in self.addr_used:
                    break
            else:
                streets.append((self._street_name(CITIES[country][ci][6] if CITIES[country][ci][6] != "bx" else "nl") + " " + str(len(streets)), 200, CITIES[country][ci][6]))
                si, num = len(streets) - 1, rng.randint(1, 200)
                k = (country, ci, si, num, "")
            self.addr_used.add(k)
            if country == "NL" and rng.random() < 0.04:
                unit = rng.choice(("a", "b", " hs", "-1"))
        street = streets[si][0]
        postcode = self._postcode(country, ci, si, num)
        return (country, ci, street, num, unit, postcode)

    def _postcode(self, country, ci, si, num):
        city = CITIES[country][ci]
        lo, hi = city[3], city[4]
        rng = self.rng
        if country == "NL":
            key = (ci, si, num // 30, num % 2)
            pc = self.nl_postcodes.get(key)
            if pc is None:
                for _ in range(1000):
                    pc = "%04d%s%s" % (rng.randint(lo, hi), rng.choice("ABCEGHJKLMNPRSTVWXZ"), rng.choice("ABCEGHJKLMNPRSTVWXZ"))
                    if pc not in self.nl_pc_used:
                        break
                self.nl_pc_used.add(pc)
                self.nl_postcodes[key] = pc
            return pc
        key = (country, ci, si)
        pc = self.street_pc.get(key)
        if pc is None:
            if country == "DE":
                pc = "%05d" % rng.randint(lo, hi)
            else:
                # a Belgian town has a few postcodes
                cands = [lo + ((hi - lo) * k) // 4 for k in range(4)] if hi > lo else [lo]
                pc = "%04d" % rng.choice(cands)
            self.street_pc[key] = pc
        return pc

    # -- people ------------------------------------------------------------------------------

    def new_phone(self, country, kind, area=None):
        """A national significant number (no trunk 0), unique in the population."""
        rng = self.rng
        while True:
            if kind == "mobile":
                if country == "NL":
                    nsn = "6" + "%08d" % rng.randrange(10_000_000, 100_000_000)
                elif country == "DE":
                    nsn = rng.choice(("151", "152", "157", "160", "162", "170", "171", "172", "176", "178")) + "%08d" % rng.randrange(100_000_000)
                else:
                    nsn = rng.choice(("470", "471", "472", "475", "476", "477", "478", "479", "484", "486", "494", "496")) + "%06d" % rng.randrange(1_000_000)
            else:
                total = {"NL": 9, "DE": 10, "BE": 8}[country]
                rest = total - len(area)
                nsn = area + str(rng.randint(2, 9)) + ("%0" + str(rest - 1) + "d") % rng.randrange(10 ** (rest - 1))
            if nsn not in self.phones_used:
                self.phones_used.add(nsn)
                return nsn

    def make_email(self, given, family, birth_year, country, work=False):
        rng = self.rng
        g = "".join(ch for ch in fold(given).lower() if ch.isalnum())
        f = "".join(ch for ch in fold(family).lower() if ch.isalnum())
        core = "".join(ch for ch in fold(split_particles(family)[1]).lower() if ch.isalnum())
        if not g:
            g = "x"
        if not f:
            f = "y"
        if work:
            dom = rng.choice(self.companies)
            pat = rng.random()
            local = (g[0] + "." + f) if pat < 0.4 else (g + "." + f) if pat < 0.8 else (g[0] + f)
        else:
            dom = DOMAINS[country].pick(rng)
            p = rng.random()
            yy = "%02d" % (birth_year % 100)
            if p < 0.25:
                local = g + "." + f
            elif p < 0.38:
                local = g[0] + f
            elif p < 0.48:
                local = g + f
            elif p < 0.55:
                local = g + "_" + f
            elif p < 0.62:
                local = f + "." + g
            elif p < 0.72:
                local = g + "." + f + yy
            elif p < 0.78:
                local = g + str(birth_year)
            elif p < 0.84:
                local = g[0] + "." + core
            elif p < 0.90:
                local = g + "." + core + str(rng.randrange(1, 100))
            else:
                local = rng.choice(HANDLES) + rng.choice(HANDLES2) + str(rng.randrange(1, 1000))
        e = local + "@" + dom
        while e in self.email_used:
            e = local + str(rng.randrange(1, 1000)) + "@" + dom
        self.email_used.add(e)
        return e


DOMAINS = {
    "NL": Weighted(["gmail.com", "hotmail.com", "outlook.com", "live.nl", "ziggo.nl", "kpnmail.nl",
                    "xs4all.nl", "planet.nl", "home.nl", "hetnet.nl", "icloud.com", "yahoo.com",
                    "upcmail.nl", "casema.nl", "quicknet.nl"],
                   [25, 18, 8, 6, 8, 6, 3, 3, 3, 3, 5, 3, 2, 1, 1]),
    "DE": Weighted(["gmail.com", "web.de", "gmx.de", "gmx.net", "t-online.de", "outlook.de",
                    "hotmail.de", "yahoo.de", "freenet.de", "icloud.com", "posteo.de", "mail.de",
                    "arcor.de"],
                   [18, 20, 18, 6, 12, 5, 4, 5, 3, 4, 2, 2, 2]),
    "BE": Weighted(["gmail.com", "hotmail.com", "telenet.be", "skynet.be", "proximus.be",
                    "outlook.be", "live.be", "icloud.com", "yahoo.fr", "scarlet.be", "voo.be"],
                   [30, 15, 18, 10, 5, 5, 5, 4, 4, 2, 2]),
}
HANDLES = ["sunny", "blue", "happy", "little", "crazy", "lucky", "dutch", "orange", "silver",
           "wild", "cool", "sweet", "magic", "tiger", "pixel", "storm", "black", "mister",
           "lady", "super"]
HANDLES2 = ["day", "bird", "cat", "fox", "girl", "boy", "star", "wolf", "bear", "moon", "rider",
            "fan", "kid", "queen", "king", "dragon", "rose", "skater"]


def rand_birth(rng, year_lo, year_hi):
    y = rng.randint(year_lo, year_hi)
    start = date(y, 1, 1).toordinal()
    end = date(y, 12, 31).toordinal()
    d = date.fromordinal(rng.randint(start, end))
    if d > REF - timedelta(days=16 * 365 + 4):
        d = REF - timedelta(days=16 * 365 + 4 + rng.randrange(400))
    return d


def generate_population(world, rng, n):
    """Yields households (with members) until n persons exist."""
    pid = 0
    hid = 0
    while pid < n:
        country = world.countries.pick(rng)
        hh = Household()
        hh.country = country
        hh.addr = world.new_address(country)
        hh.members = []
        cmix = world.culture_mix[country]
        x = rng.random()
        specs = []  # (role, sex, birth, culture)
        y_ref = REF.year
        if x < 0.35:
            kind = "single"
            age = int(rng.triangular(18, 95, 45))
            specs.append(("head", rng.choice("MF"), rand_birth(rng, y_ref - age - 1, y_ref - age), cmix.pick(rng)))
        elif x < 0.38:
            kind = "flat"
            for _ in range(rng.choice((2, 2, 3))):
                age = rng.randint(19, 34)
                specs.append(("flatmate", rng.choice("MF"), rand_birth(rng, y_ref - age - 1, y_ref - age), cmix.pick(rng)))
        elif x < 0.66:
            kind = "couple"
            age = int(rng.triangular(20, 92, 55))
            c1 = cmix.pick(rng)
            b1 = rand_birth(rng, y_ref - age - 1, y_ref - age)
            specs.append(("head", "M", b1, c1))
            same = rng.random() < 0.04
            age2 = max(18, min(96, age + int(rng.gauss(-2, 4))))
            specs.append(("partner", "M" if same else "F", rand_birth(rng, y_ref - age2 - 1, y_ref - age2), c1 if rng.random() < 0.85 else cmix.pick(rng)))
        else:
            kind = "family" if x < 0.92 else "single_parent"
            age = rng.randint(40, 66)
            c1 = cmix.pick(rng)
            b1 = rand_birth(rng, y_ref - age - 1, y_ref - age)
            if kind == "family":
                specs.append(("head", "M", b1, c1))
                age2 = max(36, age + int(rng.gauss(-2, 3)))
                specs.append(("partner", "F", rand_birth(rng, y_ref - age2 - 1, y_ref - age2), c1 if rng.random() < 0.85 else cmix.pick(rng)))
            else:
                specs.append(("head", "F" if rng.random() < 0.8 else "M", b1, c1))
            nk = rng.choices((1, 2, 3, 4), (40, 40, 15, 5))[0] if kind == "family" else rng.choice((1, 1, 2))
            young = min(y_ref - 16, b1.year + 40)
            old = max(b1.year + 20, y_ref - 30)
            if old > young:
                old = young
            twins = nk >= 2 and rng.random() < 0.07
            for k in range(nk):
                if k == 1 and twins:
                    specs.append(("child", rng.choice("MF") if rng.random() < 0.34 else specs[-1][1], specs[-1][2], specs[-1][3]))
                else:
                    cc = specs[rng.randrange(2)][3] if kind == "family" else c1
                    specs.append(("child", rng.choice("MF"), rand_birth(rng, old, young), cc))
        head = None
        partner_takes = False
        for role, sex, birth, cul in specs:
            if pid >= n:
                break
            p = Person()
            p.pid = pid
            pid += 1
            p.hh = hid
            p.culture = cul
            p.sex = sex
            p.birth = birth
            p.is_child = role == "child"
            p.birth_family = None
            gw = world.given[(cul, sex)]
            p.given = gw.pick(rng)
            if role == "child":
                for _ in range(10):  # siblings (and twins) never share a first name
                    if all(m.given != p.given for m in hh.members):
                        break
                    p.given = gw.pick(rng)
            p.given2 = None
            if rng.random() < SECOND_GIVEN_RATE[cul]:
                g2 = gw.pick(rng)
                if g2 != p.given:
                    p.given2 = g2
            nick = NICKNAMES.get(p.given)
            if nick and rng.random() < 0.30:
                p.call = rng.choice(nick)
            elif p.given2 and rng.random() < 0.08:
                p.call = p.given2
            else:
                p.call = p.given
            own = world.surnames[cul].pick(rng)
            if role == "head" or role == "flatmate":
                p.family = own
                if role == "head":
                    head = p
            elif role == "partner":
                if sex != head.sex and rng.random() < 0.68 and rng.random() < TAKES_NAME[cul]:
                    p.family = head.family
                    p.birth_family = own
                    partner_takes = True
                elif sex == head.sex and rng.random() < 0.03:
                    p.family = head.family
                    p.birth_family = own
                else:
                    p.family = own
            else:  # child
                if kind == "single_parent" and head.sex == "F" and rng.random() < 0.4:
                    p.family = own if cul == head.culture else world.surnames[cul].pick(rng)
                else:
                    p.family = head.family
            p.nid = "%09d" % ((p.pid * 387420489 + 583190427) % 1_000_000_000)
            age = REF.year - birth.year
            mob_rate = 0.92 if age < 30 else 0.88 if age < 65 else 0.6 if age < 80 else 0.35
            p.mobile = (country, world.new_phone(country, "mobile")) if rng.random() < mob_rate else None
            mail_rate = 0.9 if age < 65 else 0.65 if age < 80 else 0.4
            p.emails = []
            if rng.random() < mail_rate:
                p.emails.append(world.make_email(p.call if rng.random() < 0.5 else p.given, p.family, birth.year, country))
                r = rng.random()
                if r < 0.25:
                    p.emails.append(world.make_email(p.given, p.family, birth.year, country, work=age < 67 and rng.random() < 0.6))
                    if r < 0.08:
                        p.emails.append(world.make_email(p.call, p.birth_family or p.family, birth.year, country))
            p.maiden_src = None
            if p.birth_family and rng.random() < 0.30:
                p.maiden_src = rng.choice(("registry", "crm", "shop"))
            p.email_src = None
            if len(p.emails) >= 2:
                # which address each source sees: main one usually, a different one per source
                # for people with three
                if len(p.emails) == 3 and rng.random() < 0.7:
                    perm = [0, 1, 2]
                    rng.shuffle(perm)
                    p.email_src = {"crm": perm[0], "shop": perm[1]}
                else:
                    p.email_src = {s: (0 if rng.random() < 0.75 else rng.randrange(1, len(p.emails))) for s in ("crm", "shop")}
            hh.members.append(p)
        head_age = REF.year - hh.members[0].birth.year
        ll_rate = 0.25 if head_age < 40 else 0.45 if head_age < 65 else 0.7
        area = CITIES[country][hh.addr[1]][5]
        hh.landline = (country, world.new_phone(country, "landline", area)) if rng.random() < ll_rate else None
        hh.family_email = None
        adults = [m for m in hh.members if not m.is_child]
        if len(hh.members) >= 2 and kind != "flat" and rng.random() < 0.15:
            f = split_particles(hh.members[0].family)[1]
            f = "".join(ch for ch in fold(f).lower() if ch.isalnum())
            g1 = fold(adults[0].call).lower()[:1]
            g2 = fold(adults[-1].call).lower()[:1]
            dom = DOMAINS[country].pick(rng)
            local = rng.choice(("fam." + f, f + "family", f + "." + g1 + g2, "familie" + f, g1 + g2 + f))
            e = local + "@" + dom
            while e in world.email_used:
                e = local + str(rng.randrange(1, 100)) + "@" + dom
            world.email_used.add(e)
            hh.family_email = e
        hh.old_addr = None
        hh.stale_src = None
        if rng.random() < 0.08:
            same_city = rng.random() < 0.7
            hh.old_addr = world.new_address(country, hh.addr[1] if same_city else None)
            hh.stale_src = rng.choices(("registry", "crm", "shop"), (15, 50, 35))[0]
        hid += 1
        yield hh


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def render_phone(phone, rng, intl_bias):
    country, nsn = phone
    cc = COUNTRY_CODE[country]
    mobile = (country == "NL" and nsn[0] == "6") or (country == "DE" and nsn[0] == "1") or (country == "BE" and nsn[0] == "4" and len(nsn) == 9)
    if country != "NL" and rng.random() < intl_bias:
        style = rng.choice(("intl_sp", "intl", "00", "intl_sp"))
    else:
        style = rng.choice(("intl_sp", "intl", "00", "nat_dash", "nat", "nat_sp", "intl_0"))
    if country == "NL":
        if mobile:
            a, rest = nsn[:1], nsn[1:]
        else:
            ln = 2 if nsn[:2] in ("10", "13", "15", "20", "23", "24", "26", "30", "33", "35", "36", "38", "40", "43", "45", "46", "50", "53", "55", "58", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79") else 3
            a, rest = nsn[:ln], nsn[ln:]
        if style == "intl_sp":
            return "+31 %s %s %s" % (a, rest[:4], rest[4:]) if mobile else "+31 %s %s %s" % (a, rest[:3], rest[3:])
        if style == "intl":
            return "+31" + nsn
        if style == "00":
            return "0031" + nsn
        if style == "nat_dash":
            return "0%s-%s" % (a, rest)
        if style == "nat":
            return "0" + nsn
        if style == "nat_sp":
            k = len(rest) % 2
            return "0%s %s" % (a, " ".join(([rest[:3]] if k else []) + [rest[i:i + 2] for i in range(3 if k else 0, len(rest), 2)]))
        return "+31 (0)%s %s" % (a, rest)
    if country == "DE":
        a = nsn[:3] if mobile else (nsn[:2] if nsn[:2] in ("30", "40", "89", "69") else nsn[:3] if len(nsn) > 2 and nsn[:3] in ("221", "711", "211", "341", "231", "201", "421", "351", "511", "911", "203", "234", "251", "241", "228") else nsn[:4])
        rest = nsn[len(a):]
        if style == "intl_sp":
            return "+49 %s %s" % (a, rest)
        if style == "intl":
            return "+49" + nsn
        if style == "00":
            return "0049 %s %s" % (a, rest)
        if style == "nat_dash":
            return "0%s-%s" % (a, rest)
        if style == "nat":
            return "0%s %s" % (a, rest)
        if style == "nat_sp":
            return "0%s/%s" % (a, rest)
        return "+49 (0)%s %s" % (a, rest)
    # BE
    a = nsn[:3] if mobile else (nsn[:1] if nsn[:1] in ("2", "3", "4", "9") else nsn[:2])
    rest = nsn[len(a):]
    grouped = " ".join(rest[i:i + 2] for i in range(0, len(rest), 2)) if len(rest) % 2 == 0 else rest[:3] + " " + " ".join(rest[i:i + 2] for i in range(3, len(rest), 2))
    if style == "intl_sp":
        return "+32 %s %s" % (a, grouped)
    if style == "intl":
        return "+32" + nsn
    if style == "00":
        return "0032" + nsn
    if style == "nat_dash":
        return "0%s/%s" % (a, grouped.replace(" ", "."))
    if style == "nat":
        return "0" + nsn
    if style == "nat_sp":
        return "0%s %s" % (a, grouped)
    return "+32 (0)%s %s" % (a, grouped)


def phone_typo(phone, rng):
    country, nsn = phone
    i = rng.randrange(max(1, len(nsn) - 7), len(nsn))
    return (country, nsn[:i] + str((int(nsn[i]) + rng.randrange(1, 10)) % 10) + nsn[i + 1:])


def render_email(e, rng, st, case_rate, trail_rate, typo_rate, tag_rate=0.0):
    local, dom = e.split("@")
    if dom == "gmail.com":
        if "." in local and rng.random() < 0.15:
            local = local.replace(".", "")
            st["email_gmail_dots"] += 1
        if rng.random() < tag_rate:
            local += "+shop"
            st["email_plus_tag"] += 1
    if rng.random() < typo_rate:
        local = typo(local, rng) if len(local) >= 4 else local
        st["email_typo"] += 1
    e = local + "@" + dom
    if rng.random() < case_rate:
        st["email_case"] += 1
        r = rng.random()
        if r < 0.25:
            e = e.upper()
        elif r < 0.6:
            e = ".".join(x[:1].upper() + x[1:] for x in local.split(".")) + "@" + dom
        else:
            e = ".".join(x[:1].upper() + x[1:] for x in local.split(".")) + "@" + dom[:1].upper() + dom[1:]
    r = rng.random()
    if r < trail_rate:
        e = e + rng.choice((" ", "  ", " "))
        st["email_space"] += 1
    elif r < trail_rate * 1.25:
        e = " " + e
        st["email_space"] += 1
    return e


def pick_email(p, hh, src, rng, st):
    if p.emails:
        idx = p.email_src[src] if p.email_src else 0
        if idx:
            st["email_not_main"] += 1
        if hh.family_email and rng.random() < 0.15:
            st["email_family"] += 1
            return hh.family_email
        return p.emails[idx]
    if hh.family_email and rng.random() < 0.7:
        st["email_family"] += 1
        return hh.family_email
    return None


def pick_phone(p, hh, rng, st):
    if p.mobile and hh.landline:
        if rng.random() < 0.2:
            st["phone_landline"] += 1
            return hh.landline
        return p.mobile
    if p.mobile:
        return p.mobile
    if hh.landline:
        st["phone_landline"] += 1
        return hh.landline
    return None


def first_name_for(p, src, rng, st, typo_rate):
    """The given name as a source sees it (call name vs formal, variants, typos)."""
    name = p.call if (p.call != p.given and rng.random() < 0.8) else p.given
    if name == p.given and p.call == p.given:
        nick = NICKNAMES.get(p.given)
        if nick and rng.random() < 0.03:
            name = rng.choice(nick)
    if name != p.given:
        st["first_not_formal"] += 1
    var = SPELLING_VARIANTS.get(name)
    if var and rng.random() < 0.12:
        name = rng.choice(var)
        st["first_spelling_variant"] += 1
    if rng.random() < typo_rate:
        t = typo(name, rng)
        if t != name:
            st["first_typo"] += 1
        name = t
    return name


def family_for(p, src, rng, st, typo_rate):
    fam = p.family
    if p.maiden_src == src:
        if rng.random() < 0.6:
            fam = p.birth_family
        else:
            fam = p.family + "-" + p.birth_family
        st["last_marriage_changed"] += 1
    if rng.random() < typo_rate:
        t = typo(fam, rng)
        if t != fam:
            st["last_typo"] += 1
        fam = t
    return fam


def accents(s, rng, st, strip_rate, translit_rate):
    if s.isascii():
        return s
    st["names_non_ascii"] += 1
    r = rng.random()
    if r < strip_rate:
        st["names_accents_stripped"] += 1
        return fold(s)
    if r < strip_rate + translit_rate:
        st["names_transliterated"] += 1
        return translit(s)
    return s


def birth_noise(d, rng, st, swap, digit, impossible):
    """(y, m, d) with the source's date noise; may be impossible."""
    y, m, dd = d.year, d.month, d.day
    r = rng.random()
    if r < impossible:
        st["dob_impossible"] += 1
        k = rng.random()
        if k < 0.4:
            # a digit typo that makes the day impossible: 27 -> 72, 3 -> 33, ...
            dd = int(str(dd).zfill(2)[::-1]) if dd % 10 >= 3 and dd // 10 < 3 and int(str(dd).zfill(2)[::-1]) > 31 else rng.randint(32, 39)
        elif k < 0.75:
            m, dd = 2, rng.choice((30, 31))
            if rng.random() < 0.4:
                m, dd = rng.choice((4, 6, 9, 11)), 31
        else:
            m = rng.randint(13, 19)
        return y, m, dd
    r -= impossible
    if r < swap:
        if dd <= 12 and dd != m:
            st["dob_day_month_swapped"] += 1
            return y, dd, m
        return y, m, dd
    r -= swap
    if r < digit:
        for _ in range(10):
            which = rng.random()
            if which < 0.4:
                ny, nm, nd = y, m, (dd // 10) * 10 + rng.randrange(10)
            elif which < 0.6:
                ny, nm, nd = y, (m // 10) * 10 + rng.randrange(10), dd
            else:
                ny, nm, nd = (y // 10) * 10 + rng.randrange(10), m, dd
            if (ny, nm, nd) != (y, m, dd):
                try:
                    date(ny, nm, nd)
                except ValueError:
                    continue
                st["dob_one_digit"] += 1
                return ny, nm, nd
    return y, m, dd


class Sources:
    """Renders records and keeps them (as CSV lines without their id) until written."""

    def __init__(self, rng, world):
        self.rng = rng
        self.world = world
        self.rows = {"registry": [], "crm": [], "shop": []}
        self.st = {s: Counter() for s in self.rows}

    # -- registry ----------------------------------------------------------------------------
    def registry(self, p, hh):
        rng, st = self.rng, self.st["registry"]
        upper = rng.random() < 0.12
        if upper:
            st["all_upper"] += 1
        given = p.given + (" " + p.given2 if p.given2 else "")
        if p.given2:
            st["first_two_given_names"] += 1
        if rng.random() < 0.02:
            t = typo(given, rng)
            if t != given:
                st["first_typo"] += 1
            given = t
        fam = family_for(p, "registry", rng, st, 0.02)
        part, core = split_particles(fam)
        if rng.random() < 0.01:
            given = given + " "
        if rng.random() < 0.01:
            core = " " + core
        if upper:
            given, part, core = given.upper(), part.upper(), core.upper()
        if rng.random() < 0.01:
            given = ""
        if rng.random() < 0.005:
            core, part = "", ""
        sex = {"M": "M", "F": "V"}[p.sex]
        if rng.random() < 0.05:
            sex = sex.lower()
        if rng.random() < 0.02:
            sex = ""
        dob = ""
        if rng.random() >= 0.02:
            y, m, d = birth_noise(p.birth, rng, st, 0.005, 0.005, 0.0)
            dob = "%04d%02d%02d" % (y, m, d)
        nid = ""
        if rng.random() >= 0.04:
            nid = p.nid
            if rng.random() < 0.03:
                nid = digit_typo(nid, rng)
                st["nid_typo"] += 1
            r = rng.random()
            if r < 0.08:
                nid = "%s-%s-%s" % (nid[:3], nid[3:5], nid[5:])
            elif r < 0.15:
                nid = "%s.%s.%s" % (nid[:4], nid[4:6], nid[6:])
            elif r < 0.20:
                nid = "%s %s %s" % (nid[:3], nid[3:6], nid[6:])
        addr = hh.addr
        if hh.stale_src == "registry":
            addr = hh.old_addr
            st["old_address"] += 1
        country, ci, street, num, unit, pc = addr
        city = CITIES[country][ci][0]
        if rng.random() < 0.03:
            street = hnr = pc = city = ""
        else:
            hnr = str(num) + unit
            if country == "NL":
                pc = pc if rng.random() < 0.85 else pc[:4] + " " + pc[4:]
            if rng.random() < 0.02:
                pc = ""
            if upper:
                street, city = street.upper(), city.upper()
            elif rng.random() < 0.25:
                city = city.upper()
        self.rows["registry"].append((csv_line((given, part, core, sex, dob, nid, street, hnr, pc, city)), p.pid))

    # -- crm ---------------------------------------------------------------------------------
    def crm(self, p, hh, dup):
        rng, st = self.rng, self.st["crm"]
        first = first_name_for(p, "crm", rng, st, 0.06)
        fam = family_for(p, "crm", rng, st, 0.06)
        first = accents(first, rng, st, 0.20, 0.10)
        fam = accents(fam, rng, st, 0.20, 0.10)
        part, core = split_particles(fam)
        r = rng.random()
        if r < 0.55:
            name = first + " " + fam
            st["name_fmt_first_last"] += 1
        elif r < 0.70:
            name = fam.upper() + ", " + first
            st["name_fmt_LAST_comma_first"] += 1
        elif r < 0.80:
            if part and rng.random() < 0.05:
                name = core + ", " + first + " " + part
                st["name_fmt_core_comma_first_particle"] += 1
            else:
                name = fam + ", " + first
                st["name_fmt_last_comma_first"] += 1
        elif r < 0.90:
            name = first[0] + ". " + fam
            st["name_fmt_initial"] += 1
        elif r < 0.95:
            name = (first + " " + fam).upper()
            st["name_fmt_upper"] += 1
        else:
            name = (first + " " + fam).lower()
            st["name_fmt_lower"] += 1
        if rng.random() < 0.02:
            st["name_salutation"] += 1
            sal = {("nl", "M"): "Dhr.", ("nl", "F"): "Mevr.", ("vl", "M"): "Dhr.", ("vl", "F"): "Mevr.",
                   ("de", "M"): "Herr", ("de", "F"): "Frau", ("fr", "M"): "M.", ("fr", "F"): "Mme",
                   ("en", "M"): "Mr", ("en", "F"): "Mrs"}.get((p.culture, p.sex), "Dhr." if p.sex == "M" else "Mevr.")
            if rng.random() < 0.2:
                sal = "Dr."
            name = sal + " " + name
        if rng.random() < 0.01:
            name = ""
        # e-mail
        e = pick_email(p, hh, "crm", rng, st)
        if dup and p.emails and rng.random() < 0.4:
            others = [x for x in p.emails if x != e]
            e = rng.choice(others) if others else None
            st["dup_other_email"] += 1
        email = ""
        if e and rng.random() >= 0.05:
            email = render_email(e, rng, st, 0.08, 0.04, 0.01)
        # phone
        ph = pick_phone(p, hh, rng, st)
        phone = ""
        if ph and rng.random() >= 0.07:
            if rng.random() < 0.01:
                ph = phone_typo(ph, rng)
                st["phone_typo"] += 1
            phone = render_phone(ph, rng, 0.8)
        # address
        addr = hh.addr
        stale = hh.stale_src == "crm"
        if stale:
            addr = hh.old_addr
            st["old_address"] += 1
        address = ""
        if rng.random() >= 0.10:
            address = self._crm_address(addr, rng, st)
        dob = ""
        if rng.random() >= 0.18:
            y, m, d = birth_noise(p.birth, rng, st, 0.02, 0.01, 0.005)
            r = rng.random()
            if r < 0.5:
                dob = "%04d-%02d-%02d" % (y, m, d)
            elif r < 0.75:
                dob = "%02d.%02d.%04d" % (d, m, y)
            else:
                dob = "%d/%d/%04d" % (d, m, y)
        idn = ""
        if rng.random() < 0.20:
            idn = p.nid
            if rng.random() < 0.02:
                idn = digit_typo(idn, rng)
                st["nid_typo"] += 1
            if rng.random() < 0.3:
                idn = "%s-%s-%s" % (idn[:3], idn[3:5], idn[5:])
        if stale:
            t = date(2015, 1, 1).toordinal() + rng.randrange(4 * 365)
        else:
            t = date(2019, 1, 1).toordinal() + rng.randrange(6 * 365)
        mod = "%s %02d:%02d:%02d" % (date.fromordinal(t).isoformat(), rng.randrange(7, 23), rng.randrange(60), rng.randrange(60))
        self.rows["crm"].append((csv_line((name, email, phone, address, dob, idn, mod)), p.pid))

    def _crm_address(self, addr, rng, st):
        country, ci, street, num, unit, pc = addr
        cityrec = CITIES[country][ci]
        city = cityrec[0]
        if cityrec[1] and rng.random() < 0.3:
            city = cityrec[1]
            st["addr_city_alias"] += 1
        if rng.random() < 0.10:
            s2 = street
            for a, b in (("straat", rng.choice(("str.", "str"))), ("Straße", rng.choice(("Str.", "Strasse", "str."))),
                         ("straße", rng.choice(("str.", "strasse"))), ("Burgemeester", "Burg."), ("laan", "ln."),
                         ("Avenue", "Av."), ("Chaussée", "Chée")):
                s2 = s2.replace(a, b)
            if s2 != street:
                st["addr_street_abbreviated"] += 1
            street = s2
        if unit:
            if rng.random() < 0.4:
                unit = ""
                st["addr_unit_dropped"] += 1
            elif unit.strip().isalpha() and len(unit.strip()) == 1:
                unit = rng.choice((unit, " " + unit, "-" + unit, unit.lower()))
        if country == "NL":
            r = rng.random()
            pc = pc[:4] + " " + pc[4:] if r >= 0.3 else pc
            if rng.random() < 0.05:
                pc = pc.lower()
        sep = ", "
        if rng.random() < 0.015:
            sep = " "
            st["addr_no_comma"] += 1
        s = "%s %s%s%s%s %s" % (street, num, unit, sep, pc, city)
        if rng.random() < 0.03:
            s = s.lower()
            st["addr_lower"] += 1
        return s

    # -- shop --------------------------------------------------------------------------------
    def shop(self, p, hh, dup):
        rng, st = self.rng, self.st["shop"]
        first = first_name_for(p, "shop", rng, st, 0.07)
        fam = family_for(p, "shop", rng, st, 0.07)
        first = accents(first, rng, st, 0.35, 0.0)
        fam = accents(fam, rng, st, 0.35, 0.0)
        part, core = split_particles(fam)
        if part:
            r = rng.random()
            if r < 0.28:
                fam = part[0].upper() + part[1:] + " " + core
            elif r < 0.32:
                first, fam = first + " " + part, core
                st["last_particle_in_first"] += 1
            elif r < 0.35:
                fam = core + " " + part
                st["last_particle_after"] += 1
        r = rng.random()
        if r < 0.08:
            first, fam = first.lower(), fam.lower()
            st["name_lower"] += 1
        elif r < 0.12:
            first, fam = first.upper(), fam.upper()
            st["name_upper"] += 1
        if rng.random() < 0.04:
            st["name_stray_space"] += 1
            if rng.random() < 0.5:
                first = first + " "
            else:
                fam = " " + fam
        if rng.random() < 0.04:
            first = ""
        if rng.random() < 0.005:
            fam = ""
        anrede = ""
        if rng.random() >= 0.15:
            anrede = "Herr" if p.sex == "M" else "Frau"
        e = pick_email(p, hh, "shop", rng, st)
        if dup:
            r = rng.random()
            if r < 0.6:
                # a second account: another of their addresses, else a new one
                others = [x for x in p.emails if x != e]
                if others:
                    e = rng.choice(others)
                else:
                    e = self.world.make_email(p.call, p.family, p.birth.year, hh.country)
                st["dup_other_email"] += 1
            elif r < 0.8:
                e = None
        email = ""
        if e and rng.random() < 0.56:
            email = render_email(e, rng, st, 0.03, 0.02, 0.015, 0.05)
        ph = pick_phone(p, hh, rng, st)
        phone = ""
        if ph and rng.random() >= 0.12:
            if rng.random() < 0.01:
                ph = phone_typo(ph, rng)
                st["phone_typo"] += 1
            phone = render_phone(ph, rng, 0.3)
        addr = hh.addr
        if hh.stale_src == "shop":
            addr = hh.old_addr
            st["old_address"] += 1
        pc = addr[5]
        if addr[0] == "NL":
            r = rng.random()
            pc = pc if r < 0.5 else pc[:4] + " " + pc[4:] if r < 0.9 else (pc[:4] + " " + pc[4:]).lower()
        if rng.random() < 0.08:
            pc = ""
        land = addr[0]
        r = rng.random()
        if r < 0.05:
            land = ""
        elif r < 0.10:
            land = land.lower()
        self.rows["shop"].append((csv_line((anrede, first, fam, email, phone, pc, land)), p.pid))


HEADERS = {
    "registry": ["reg_id", "voornaam", "tussenvoegsel", "achternaam", "geslacht", "geboortedatum",
                 "bsn", "straat", "huisnummer", "postcode", "woonplaats"],
    "crm": ["contact_id", "full_name", "email", "phone", "address", "dob", "id_number",
            "last_modified"],
    "shop": ["Kundennummer", "Anrede", "Vorname", "Nachname", "E-Mail", "Telefon", "PLZ", "Land"],
}

PANORAMA_TOML = r'''# Written by benches/generators/people.py: three sources about one population of persons,
# ground truth in truth.csv (source,record_id,person_id). Only the map and one custom field:
# blocking, comparisons and contradictions are the engine's defaults.

[project]
name = "people"
description = "Independent record-linkage benchmark: registry, crm and shop about one population"

[sources.registry]
location = "registry.csv"
primary_key = "reg_id"
types = { reg_id = "string", geboortedatum = "string", bsn = "string", huisnummer = "string", postcode = "string" }

[sources.crm]
location = "crm.csv"
primary_key = "contact_id"
types = { contact_id = "string", phone = "string", dob = "string", id_number = "string", last_modified = "timestamp" }

[sources.shop]
location = "shop.csv"
primary_key = "Kundennummer"
types = { Kundennummer = "string", Telefon = "string", PLZ = "string" }

[unify.fields.national_id]
kind = "identifier"
description = "BSN-like national id: 9 digits, written with or without separators"

[unify.sources.registry]
first_name = "voornaam"
last_name = { sql = "nullif(concat_ws(' ', tussenvoegsel, achternaam), '')" }
gender = { sql = "CASE upper(trim(geslacht)) WHEN 'M' THEN 'M' WHEN 'V' THEN 'F' END" }
birth_date = "geboortedatum"
street = { sql = "nullif(concat_ws(' ', straat, huisnummer), '')" }
postcode = "postcode"
city = "woonplaats"
national_id = "bsn"

[unify.sources.crm]
full_name = "full_name"
email = "email"
phone = "phone"
street = { sql = "split_part(address, ', ', 1)" }
postcode = { sql = "regexp_replace(address, '^.*[ ,]([0-9]{4} ?[A-Za-z]{2}|[0-9]{4,5}) [^0-9]*$', '\\1')" }
city = { sql = "regexp_replace(address, '^.*[0-9]( ?[A-Za-z]{2}\\b)? +', '')" }
birth_date = "dob"
national_id = "id_number"
updated_at = "last_modified"
default_region = "NL"

[unify.sources.shop]
first_name = "Vorname"
last_name = "Nachname"
gender = { sql = "CASE trim(\"Anrede\") WHEN 'Herr' THEN 'M' WHEN 'Frau' THEN 'F' END" }
email = "E-Mail"
phone = "Telefon"
postcode = "PLZ"
country = { sql = "upper(trim(\"Land\"))" }
default_region = "NL"
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, required=True, help="size of the population")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quiet", action="store_true", help="no summary")
    args = ap.parse_args(argv)
    t0 = time.time()
    n = args.persons
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    world = World(n, rng)
    src = Sources(rng, world)
    cover = {"registry": 0.80, "crm": 0.60, "shop": 0.50}
    dup_rate = {"registry": 0.01, "crm": 0.05, "shop": 0.04}
    counts = {s: bytearray(n) for s in cover}
    pop = Counter()
    names = Counter()
    name_births = Counter()
    hh_sizes = Counter()
    addr_households = Counter()
    for hh in generate_population(world, rng, n):
        hh_sizes[len(hh.members)] += 1
        addr_households[hh.addr[:5]] += 1
        births = Counter((m.birth, m.family) for m in hh.members if m.is_child)
        pop["twin_pairs"] += sum(c * (c - 1) // 2 for c in births.values())
        if hh.old_addr:
            pop["households_moved"] += 1
        if hh.family_email:
            pop["households_family_email"] += 1
        if hh.landline:
            pop["households_landline"] += 1
        if hh.addr[4]:
            pop["households_with_unit"] += 1
        for p in hh.members:
            names[(p.given, p.family)] += 1
            name_births[(p.given, p.family, p.birth)] += 1
            pop["persons"] += 1
            pop["culture_" + p.culture] += 1
            pop["country_" + hh.country] += 1
            if p.call != p.given:
                pop["goes_by_other_name"] += 1
            if p.given2:
                pop["second_given_name"] += 1
            if p.birth_family:
                pop["took_partners_surname"] += 1
            if p.maiden_src:
                pop["marriage_name_differs_in_one_source"] += 1
            if p.mobile:
                pop["mobile"] += 1
            pop["emails_%d" % len(p.emails)] += 1
            for s in ("registry", "crm", "shop"):
                if rng.random() < cover[s]:
                    k = 1
                    if rng.random() < dup_rate[s]:
                        k = 2 if rng.random() < 0.9 else 3
                    counts[s][p.pid] = k
                    for j in range(k):
                        if s == "registry":
                            src.registry(p, hh)
                        elif s == "crm":
                            src.crm(p, hh, j > 0)
                        else:
                            src.shop(p, hh, j > 0)
    # shuffle, give ids, write
    gen_time = time.time() - t0
    id_fmt = {
        "registry": lambda k: [str(x) for x in rng.sample(range(10_000_000, 100_000_000), k)],
        "crm": lambda k: ["CRM-%07d" % x for x in rng.sample(range(10_000_000), k)],
        "shop": lambda k: [str(x) for x in rng.sample(range(100_000, 100_000 + 20 * k + 1000), k)],
    }
    with open(os.path.join(args.out, "truth.csv"), "w", encoding="utf-8", newline="") as tf:
        tf.write("source,record_id,person_id\n")
        for s in ("registry", "crm", "shop"):
            rows = src.rows[s]
            rng.shuffle(rows)
            ids = id_fmt[s](len(rows))
            with open(os.path.join(args.out, s + ".csv"), "w", encoding="utf-8", newline="") as f:
                f.write(",".join(HEADERS[s]) + "\n")
                for rid, (line, pid) in zip(ids, rows):
                    f.write(rid + "," + line + "\n")
                    tf.write("%s,%s,P%07d\n" % (s, rid, pid))
    with open(os.path.join(args.out, "panorama.toml"), "w", encoding="utf-8") as f:
        f.write(PANORAMA_TOML)
    elapsed = time.time() - t0
    if not args.quiet:
        shared = [c for c in addr_households.values() if c > 1]
        pop["addresses_shared_by_households"] = len(shared)
        pop["households_sharing_an_address"] = sum(shared)
        summary(n, src, counts, pop, names, name_births, hh_sizes, gen_time, elapsed, args)


def summary(n, src, counts, pop, names, name_births, hh_sizes, gen_time, elapsed, args):
    out = sys.stdout
    w = out.write
    w("people.py: %d persons, seed %d -> %s in %.1f s (generate %.1f s)\n" % (n, args.seed, args.out, elapsed, gen_time))
    nh = sum(hh_sizes.values())
    w("\nPOPULATION\n")
    w("  households %d (persons per household %.2f); by size: %s\n" % (nh, n / nh, ", ".join("%d: %d" % (k, hh_sizes[k]) for k in sorted(hh_sizes))))
    w("  persons in households of 2+: %d (%.1f%%)\n" % (sum(k * v for k, v in hh_sizes.items() if k > 1), 100 * sum(k * v for k, v in hh_sizes.items() if k > 1) / n))
    w("  twin pairs %d; households moved %d; with landline %d; with family mailbox %d; with a unit number (12A, 12-2) %d\n" % (
        pop["twin_pairs"], pop["households_moved"], pop["households_landline"], pop["households_family_email"], pop["households_with_unit"]))
    w("  households at exactly the same address as another household (German apartment buildings): %d at %d addresses\n" % (
        pop["households_sharing_an_address"], pop["addresses_shared_by_households"]))
    groups = [c for c in names.values() if c > 1]
    w("  namesakes (same given + family name): %d names shared by %d persons (%.1f%%), %d namesake pairs; same name and birth date: %d pairs\n" % (
        len(groups), sum(groups), 100 * sum(groups) / n, sum(c * (c - 1) // 2 for c in groups), sum(c * (c - 1) // 2 for c in name_births.values() if c > 1)))
    top = names.most_common(5)
    w("  most common names: %s\n" % ", ".join("%s %s (%d)" % (g, f, c) for (g, f), c in top))
    w("  countries: %s\n" % ", ".join("%s %.1f%%" % (k[8:], 100 * v / n) for k, v in sorted(pop.items()) if k.startswith("country_")))
    w("  cultures: %s\n" % ", ".join("%s %.1f%%" % (k[8:], 100 * v / n) for k, v in sorted(pop.items()) if k.startswith("culture_")))
    for k in ("goes_by_other_name", "second_given_name", "took_partners_surname", "marriage_name_differs_in_one_source", "mobile", "emails_0", "emails_1", "emails_2", "emails_3"):
        w("  %s: %d (%.1f%%)\n" % (k, pop[k], 100 * pop[k] / n))
    w("\nSOURCES\n")
    for s in ("registry", "crm", "shop"):
        c = counts[s]
        recs = len(src.rows[s])
        persons = sum(1 for x in c if x)
        w("  %s: %d records, %d persons (%.1f%% of population), within-source duplicate records %d (%.1f%%)\n" % (
            s, recs, persons, 100 * persons / n, recs - persons, 100 * (recs - persons) / max(recs, 1)))
        recs = max(recs, 1)
        empty = [0] * (len(HEADERS[s]) - 1)
        for fields in csv.reader(line for line, _ in src.rows[s]):
            for i, v in enumerate(fields):
                if not v:
                    empty[i] += 1
        w("    missing: %s\n" % ", ".join("%s %.1f%%" % (h, 100 * e / recs) for h, e in zip(HEADERS[s][1:], empty)))
        st = src.st[s]
        w("    noise: %s\n" % ", ".join("%s %.2f%%" % (k, 100 * v / recs) for k, v in sorted(st.items())))
    w("\nTRUE PAIRS\n")
    keys = ("registry", "crm", "shop")
    total = 0
    for i, a in enumerate(keys):
        ca = counts[a]
        within = sum(x * (x - 1) // 2 for x in ca if x > 1)
        w("  within %s: %d\n" % (a, within))
        total += within
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            ca, cb = counts[a], counts[b]
            across = sum(x * y for x, y in zip(ca, cb) if x and y)
            w("  %s x %s: %d\n" % (a, b, across))
            total += across
    in_any = sum(1 for i in range(n) if counts["registry"][i] or counts["crm"][i] or counts["shop"][i])
    w("  total true pairs %d; persons in at least one source %d (%.1f%%), in all three %d\n" % (
        total, in_any, 100 * in_any / n, sum(1 for i in range(n) if counts["registry"][i] and counts["crm"][i] and counts["shop"][i])))


if __name__ == "__main__":
    main()
