# Every `unsafe {` block and `unsafe impl` needs a `SAFETY:` comment on its own line or in
# the three lines above it (in the same file). Used by .ci/test.sh.
FNR == 1 { for (i = 0; i < 4; i++) window[i] = "" }
{
    window[FNR % 4] = $0
    if ($0 ~ /unsafe[ ]*\{/ || $0 ~ /unsafe impl/) {
        total++
        found = 0
        for (i = 0; i < 4; i++) if (window[(FNR - i + 4) % 4] ~ /SAFETY:/) found = 1
        if (!found) { missing++; print FILENAME ":" FNR ": unsafe without a SAFETY: comment" }
    }
}
END { printf "%d unsafe blocks, %d without a SAFETY: comment\n", total, missing; exit missing > 0 }
