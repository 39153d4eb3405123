"""The text of the built-in corpus: hand-written sentences plus a seeded sentence grammar.

Every sentence here was written for speechvq (nothing is vendored: the Harvard/IEEE-1969 lists
were deliberately not used, their licence being unclear). Two sources:

- `HANDWRITTEN`: 64 phonetically rich sentences. Read by eSpeak NG's ``en-us`` voice they cover
  all 39 ARPAbet phones of the corpus, including the rare ones (ZH: *measure, usual, beige*;
  OY: *boy, voice, noise*; UH: *book, wool, foot*), which the grammar alone makes too seldom.
- a small template grammar (four frames: statement, question, imperative with a vocative and a
  comma, subordinate clause) over ~360 common words, sampled with a seeded `random.Random`, so a
  seed always gives the same list of distinct sentences.

The built-in corpus is described in notes/builtin_corpus.md; the synthesis is in builtin_synth.py.
"""

from __future__ import annotations

import random

__all__ = ["HANDWRITTEN", "grammar_sentence", "make_sentences"]

HANDWRITTEN: tuple[str, ...] = (
    "The boy enjoyed his usual visit to the beige garage on Thursday.",
    "She measured the treasure with great pleasure and a little confusion.",
    "A loud noise woke the young cowboy before dawn.",
    "Could you put the wool cushion back on the wooden chair?",
    "Joyce chose a shiny coin and a toy boat for her nephew.",
    "The judge took a long look at the strange vision in the mirror.",
    "Thirty thousand birds flew south through the thick fog.",
    "Our neighbor has a huge yellow yacht in the harbor.",
    "Which of these three paths leads to the village church?",
    "The usual decision was to leave the leisure center at noon.",
    "Father poured hot soup into the blue bowl with a smooth motion.",
    "Young George enjoys measuring the height of every oak tree.",
    "Point the flashlight toward the noisy oyster boat, please.",
    "We should look for the good book that fell behind the bookshelf.",
    "The azure sky looked calm, although the ocean was rough.",
    "Ruth caught a huge fish with an old bamboo pole.",
    "A genuine jewel shone in the pocket of the casual beige jacket.",
    "How many cows grazed beside the brown house this morning?",
    "Choose the cheapest juice, then join us by the fountain.",
    "The mouse found a wedge of cheese under the kitchen stove.",
    "Vivid visions of the voyage kept Joy awake all night.",
    "This thin thread will hardly hold that heavy feather pillow.",
    "Both of them thought the weather would change by Thursday.",
    "Put your foot on the bottom rung, and hold the ladder steady.",
    "Usually the royal envoy arrives by ship in June.",
    "The youth sang a joyful song about a wandering hawk.",
    "Whose shoes were left outside the door in the rain?",
    "A gentle breeze shook the leaves of the huge beech tree.",
    "Please avoid the soil near the boiling oil lamp.",
    "I would like a cup of warm milk with honey.",
    "The clown threw a round ball high above the crowd.",
    "Every Monday, Judy gives the puppy a small chunk of beef.",
    "The engineer explained the unusual measurement to the visitors.",
    "Her voice was loud, but the answer was quite clear.",
    "The treasure lay hidden beneath the sandy floor of the cave.",
    "A lazy dog yawned and watched the sheep jump over the hedge.",
    "Bring the orange bucket, the rusty shovel and the garden hose.",
    "The chef sliced the cabbage, the onions and the zucchini.",
    "Thank you for the wonderful thought, though it came too late.",
    "Nobody could explain why the clock stopped at midnight.",
    "The pupils studied the huge globe and the ancient map.",
    "Join the choir, and your voice will carry through the hall.",
    "Which wheel of the wagon squeaked when it rolled uphill?",
    "The television showed the collision of two icy comets.",
    "Eight brave boys played football on the muddy field.",
    "The hungry wolf looked through the woods for something to eat.",
    "My cousin Hugh keeps a few ewes on a hilly farm.",
    "An owl hooted twice from the top of the tall pine.",
    "Grandmother's soup always smells of garlic and thyme.",
    "She pushed the heavy cart up the path toward the barn.",
    "Loud thunder rumbled, and the children hid under the quilt.",
    "The mayor was pleased with the new bridge across the river.",
    "Zoe zipped her jacket, grabbed her hat and ran to the bus.",
    "The poet wrote about the beauty of the quiet harbor.",
    "A jar of jam sat on the edge of the shelf.",
    "Few people knew the true value of the old violin.",
    "He found the usual pleasure in a lazy afternoon of reading.",
    "The boy's toy truck made a funny noise on the stairs.",
    "Should the girls bring sugar, butter and flour for the cake?",
    "The ship's captain ordered a change of course at dusk.",
    "Cheerful voices echoed through the empty hallway.",
    "The fisherman mended his net with a long, thin needle.",
    "Seven yellow ducks waddled toward the muddy pond.",
    "We measured the garage and then chose a beige door.",
)

# The grammar's vocabulary: singular countable nouns, adjectives, transitive verbs as
# (base, past), intransitive verbs in the past, adverbs, prepositions and first names.
_NOUNS = (
    "apple basket bottle bridge cabin camera candle carpet castle chair chicken coat coin "
    "cookie cottage garden guitar hammer harbor helmet jacket kettle kitchen ladder lamp letter "
    "lion melon mirror monkey needle notebook oven painting parcel pencil pillow pocket puzzle "
    "rabbit river rocket saddle sandwich shovel sofa spoon stove ticket tiger towel tractor "
    "trumpet tunnel turtle village violin wagon wallet window wizard yacht zebra garage treasure "
    "oyster toy boy voice cushion feather thimble thread badge bucket dolphin fountain journal "
    "puppy mountain judge nephew soldier cowboy sheep goose ship shell whistle pudding hook wolf "
    "bush cupboard engine envelope pillar hedge cloud bench drawer pepper barrel mouse ring king "
    "swing string wing moth cloth tooth throne table plate grape cake"
).split()
_ADJECTIVES = (
    "old new small large quiet noisy bright dark golden silver wooden heavy shiny dusty muddy "
    "tiny huge gentle clever lazy happy yellow purple green round smooth rough warm cold cheap "
    "fancy broken hollow sleepy thirsty careful strange proud loyal royal joyful beige pleasant "
    "cozy foolish woolen crooked faithful empty unusual young strong long "
    "boring amazing sparkling thin thick healthy plain"
).split()
_VERBS = tuple(tuple(p.split("/")) for p in (
    "carry/carried push/pushed pull/pulled wash/washed paint/painted fix/fixed find/found "
    "hide/hid watch/watched catch/caught throw/threw bring/brought measure/measured "
    "borrow/borrowed follow/followed lift/lifted drop/dropped open/opened close/closed "
    "chase/chased touch/touched choose/chose join/joined enjoy/enjoyed spoil/spoiled "
    "polish/polished visit/visited build/built sell/sold buy/bought keep/kept move/moved "
    "pack/packed check/checked judge/judged wrap/wrapped drag/dragged cook/cooked shake/shook "
    "hold/held kick/kicked weigh/weighed treasure/treasured hang/hung ring/rang "
    "thank/thanked bathe/bathed"
).split())
_INTRANSITIVE = tuple(w.replace("_", " ") for w in (
    "slept waited laughed vanished arrived shivered smiled wandered rested glowed rattled "
    "stumbled whispered jumped yawned sang cried paused appeared returned "
    "kept_singing kept_thinking went_fishing"
).split())
_ADVERBS = (
    "quickly slowly quietly loudly gently softly early today yesterday again together outside "
    "upstairs carefully happily suddenly usually rarely proudly eagerly boldly calmly"
).split()
_PREPOSITIONS = "near behind under beside inside beyond across toward above below around".split()
_NAMES = (
    "Anna Oliver George Judy Thomas Sophie Victor Zoe Charles Hugo Irene Joseph Martha Nathan "
    "Paula Rachel Ruth Samuel Vivian Walter Beatrice Douglas Eileen Felix Gloria Howard Isabel "
    "Kevin Lucy Megan Oscar Peter Roger Sheila Ursula Wendy"
).split()
_DETERMINERS = ("the", "a", "my", "your", "his", "her", "our", "that", "every")
_AUXILIARIES = ("Did", "Will", "Can", "Should", "Could", "Would")


def _noun_phrase(rng: random.Random, adjective: bool) -> str:
    det = rng.choice(_DETERMINERS)
    words = ([rng.choice(_ADJECTIVES)] if adjective else []) + [rng.choice(_NOUNS)]
    if det == "a" and words[0][0] in "aeiou":
        det = "an"
    return " ".join([det, *words])


def grammar_sentence(rng: random.Random) -> str:
    """One sentence from the template grammar, drawn with ``rng``.

    Args:
        rng: the random source (a seeded `random.Random` makes the output reproducible).

    Returns:
        A capitalised sentence ending in ``.`` or ``?``, 5 to 14 words long.
    """
    frame = rng.randrange(4)
    if frame == 0:  # statement with a prepositional phrase
        s = (f"{_noun_phrase(rng, True)} {rng.choice(_VERBS)[1]} {_noun_phrase(rng, False)} "
             f"{rng.choice(_PREPOSITIONS)} {_noun_phrase(rng, True)}.")
    elif frame == 1:  # yes/no question
        s = (f"{rng.choice(_AUXILIARIES)} {_noun_phrase(rng, False)} {rng.choice(_VERBS)[0]} "
             f"{_noun_phrase(rng, True)} {rng.choice(_ADVERBS)}?")
    elif frame == 2:  # imperative with a vocative
        s = (f"{rng.choice(_NAMES)}, please {rng.choice(_VERBS)[0]} {_noun_phrase(rng, True)} "
             f"{rng.choice(_PREPOSITIONS)} {_noun_phrase(rng, False)}.")
    else:  # subordinate clause, comma, main clause
        s = (f"When {_noun_phrase(rng, False)} {rng.choice(_INTRANSITIVE)}, "
             f"{_noun_phrase(rng, True)} {rng.choice(_INTRANSITIVE)} {rng.choice(_ADVERBS)}.")
    return s[0].upper() + s[1:]


def make_sentences(n_grammar: int, seed: int) -> list[str]:
    """The corpus text: the hand-written sentences followed by ``n_grammar`` distinct grammar ones.

    Args:
        n_grammar: how many grammar sentences to add (all distinct from each other and from the
            hand-written ones).
        seed: seed of the grammar's random source; the same seed gives the same list.

    Returns:
        ``len(HANDWRITTEN) + n_grammar`` distinct sentences, hand-written first.
    """
    rng = random.Random(f"speechvq-builtin-text-{seed}")
    out = list(HANDWRITTEN)
    seen = set(out)
    while len(out) < len(HANDWRITTEN) + n_grammar:
        s = grammar_sentence(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
