#!/usr/bin/env python3
"""Writes a seed corpus of large adversarial inputs into corpus/<target>/ (ignored by git).

Each seed is an input that once cost the tagger quadratic time or is shaped to find the next
one: very long words and lines, many distinct or near-identical tokens, deep markup, long CJK
runs, long archive names. Run from crates/tagger/fuzz, then fuzz with a -max_len that admits
them (see crates/tagger/README.md).
"""
import io
import os
import random
import tarfile
import zipfile

MIB = 1 << 20
rng = random.Random(9)


def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def text(selector, s):
    # keywords target: the first byte picks the format (low 2 bits: plain, markdown, html,
    # code) and the language (bit 7 on: bit 6 picks English or Chinese).
    return bytes([selector]) + s.encode()


def bases(n):
    return "".join(rng.choice("ACGT") for _ in range(n))


def distinct_words(total, length):
    out, i = [], 0
    size = 0
    while size < total:
        w = format(i * 0x9E3779B97F4A7C15 % (1 << 64), "x")
        w = (w * (length // len(w) + 1))[:length].translate(str.maketrans("0123456789", "ghijklmnop"))
        out.append(w)
        size += length + 1
        i += 1
    return " ".join(out)


fasta = f">chr1 Homo sapiens\n{bases(300_000)}\n>chr2 Homo sapiens\n{bases(300_000)}\n"
put("keywords", "fasta", text(0x80, fasta))
put("keywords", "two-long-words", text(0, "a" * 2_000_000 + " " + "b" * 2_000_000))
put("keywords", "distinct-64", text(0x80, distinct_words(4 * MIB, 64)))
put("keywords", "distinct-5", text(0, distinct_words(4 * MIB, 5)))
put("keywords", "near-identical", text(0x80, "".join(f"graphstoreentry{i:06}. " for i in range(200_000))))
put("keywords", "formfeeds", text(0, "start" + "\n\x0c" * 1_000_000 + "end"))
put("keywords", "cjk-run", text(0xC0, "大熊猫竹子栖息地保护区" * 300_000))
put("keywords", "one-long-line", text(0x80, " ".join(["honey bee colony"] * 300_000)))
put("keywords", "md-brackets", text(1, "[" * 500_000 + "](" * 500_000))
put("keywords", "md-emphasis", text(1, "*_" * 1_000_000))
put("keywords", "md-quotes", text(1, ">" * 200_000 + " x\n" + "- " * 200_000))
put("keywords", "md-backticks", text(1, "`" * 100_000 + " x " + "``" * 100_000))
put("keywords", "html-lt", text(2, "<" * 2_000_000))
put("keywords", "html-scripts", text(2, "<script></b>" * 200_000))
put("keywords", "html-entities", text(2, "&#x" * 1_000_000))
put("keywords", "code-identifier", text(3, "a_B" * 1_000_000))
put("keywords", "code-lines", text(3, "fn x() {}\n" * 300_000))


def tar_bytes(members, gz):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


long_name = "".join(f"word{i}_" for i in range(300_000))
for gz, sel in ((False, 0), (True, 1)):
    kind = "targz" if gz else "tar"
    put("tar_listing", f"{kind}-long-name", bytes([sel]) + tar_bytes([(long_name, b"x")], gz))
    many = [(f"logs/{distinct_words(200, 20).replace(' ', '/')}/{i}.log", b"") for i in range(2000)]
    put("tar_listing", f"{kind}-many-long-paths", bytes([sel]) + tar_bytes(many, gz))


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


put("zip_listing", "long-names", zip_bytes([(f"{i}/" + "x_y" * 20_000, b"") for i in range(100)]))
put("zip_listing", "many-entries", zip_bytes([(f"d/{i}_" + "ab" * 100, b"") for i in range(10_050)]))
