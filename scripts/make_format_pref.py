"""Write the built-in preference demo sets (format_pref, format_kto, format_sft) and the held-out pairs used by the
tests.

The task: the prompt states a format ("end your reply with the word DONE") and the preferred reply follows it while
the dispreferred one is the same answer without it. SmolLM2-135M-Instruct does not follow this instruction, so the
base model ranks the rejected reply higher on nearly every pair, and a value head on top of it starts at chance.
Answers come from the built-in `general` set (training) and from the hand-written list below (held out).

    python scripts/make_format_pref.py
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = ROOT / "src/tuneforge/data/builtin"
PHRASES = ["End your reply with the word DONE.", "Finish your answer with the word DONE.",
           "Please end with the word DONE.", "Close your reply with DONE."]
HELDOUT = [
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels."),
    ("What is the boiling point of water in Fahrenheit?", "Water boils at 212 degrees Fahrenheit."),
    ("What do cows drink?", "Cows drink water."),
    ("What is 6 plus 9?", "6 plus 9 equals 15."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("Who wrote 'Hamlet'?", "'Hamlet' was written by William Shakespeare."),
    ("What is the capital of Portugal?", "The capital of Portugal is Lisbon."),
    ("How many months have 31 days?", "Seven months have 31 days."),
    ("What is the chemical symbol for iron?", "The chemical symbol for iron is Fe."),
    ("What is the main ingredient of bread?", "The main ingredient of bread is flour."),
    ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
    ("What is 5 times 5?", "5 times 5 is 25."),
    ("How many seconds are in a minute?", "There are 60 seconds in a minute."),
    ("What is the capital of Mexico?", "The capital of Mexico is Mexico City."),
    ("What animal is known as the king of the jungle?", "The lion is known as the king of the jungle."),
    ("Give me a tip for studying.", "Study in short sessions and take regular breaks."),
    ("What is the opposite of 'empty'?", "The opposite of 'empty' is 'full'."),
    ("What do you call frozen water?", "Frozen water is called ice."),
    ("What is the capital of Kenya?", "The capital of Kenya is Nairobi."),
    ("How many players are on a soccer team on the field?", "A soccer team has eleven players on the field."),
    ("What is a noun?", "A noun is a word that names a person, place or thing."),
    ("Which season comes after winter?", "Spring comes after winter."),
    ("What is 20 minus 8?", "20 minus 8 is 12."),
]


def pair(i: int, question: str, answer: str) -> dict:
    return {"instruction": f"{question} {PHRASES[i % len(PHRASES)]}", "input": "",
            "chosen": f"{answer} DONE", "rejected": answer}


def bare_word(i: int, question: str, answer: str) -> dict:
    """The format word alone is not a reply: without these pairs a reward model scores a bare "DONE" like a good
    answer, and PPO against it learns to reply "DONE" to everything (docs/benchmarks.md, PPO)."""
    return {**pair(i, question, answer), "rejected": "DONE"}


def main() -> None:
    general = json.loads((BUILTIN / "general.json").read_text())
    english = [g for g in general if g["instruction"].isascii()]
    train = [pair(i, g["instruction"], g["output"]) for i, g in enumerate(english)]
    with_bare = []  # every fourth prompt also gets a pair against the bare word, right after its first pair
    for i, g in enumerate(english):
        with_bare += [train[i]] + ([bare_word(i, g["instruction"], g["output"])] if i % 4 == 1 else [])
    (BUILTIN / "format_pref.json").write_text(json.dumps(with_bare, indent=1, ensure_ascii=False) + "\n")
    # Demonstrations (the chosen replies) for the first stage of the RLHF pipeline: SFT, then rm, then ppo.
    demos = [{"instruction": p["instruction"], "input": "", "output": p["chosen"]} for p in train]
    (BUILTIN / "format_sft.json").write_text(json.dumps(demos, indent=1, ensure_ascii=False) + "\n")
    kto = []
    for i, p in enumerate(train):  # unpaired: each prompt appears once, alternately with a good and a bad reply
        good = i % 2 == 0
        kto.append({"instruction": p["instruction"], "input": "", "output": p["chosen" if good else "rejected"],
                    "kto_tag": good})
    (BUILTIN / "format_kto.json").write_text(json.dumps(kto, indent=1, ensure_ascii=False) + "\n")
    held = [pair(i, q, a) for i, (q, a) in enumerate(HELDOUT)]
    (BUILTIN / "format_pref_heldout.json").write_text(json.dumps(held, indent=1, ensure_ascii=False) + "\n")
    print(f"format_pref: {len(with_bare)} pairs ({len(with_bare) - len(train)} against a bare DONE), format_sft: "
          f"{len(demos)} rows, format_kto: {len(kto)} rows, held out: {len(held)} pairs")


if __name__ == "__main__":
    main()
