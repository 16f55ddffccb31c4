#!/usr/bin/env bash
# Set up ./.venv and run cryoal's main job on built-in simulated data (no downloads):
# simulate -> pretrain on the unlabelled pool -> extract -> a labelling project with teacher-student
# training (from the project's pretrained encoder) and a model-ranked round
# suggestions -> an active-learning benchmark with learning curves. Output: demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,napari   # napari: 'cryoal label demo_output/myproj' afterwards
export PATH="$PWD/.venv/bin:$PATH"
repo="$PWD"
out="$repo/demo_output"
rm -rf "$out" && mkdir -p "$out" && cd "$out"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. simulated subtomograms: 4 phantom classes, CTF, ±60° wedge, SNR 0.1, with a preview"
cryoal simulate subtomograms subtomograms.h5 --classes 4 --per-class 100 --box 32 \
    --voxel-size 10 --snr 0.1 --tilt-range -60 60 --seed 0 --preview preview.png
cryoal info subtomograms.h5

step "1b. learning from the unlabelled pool: pretrain an encoder on all 400 (no labels), then train on 40 labels with and without it"
cryoal pretrain subtomograms.h5 --out encoder --preset student --epochs 30
# --val-fraction 0.9: 40 labelled samples train, the other 360 measure the accuracy
for start in scratch encoder; do
    extra=(); [ "$start" = encoder ] && extra=(--encoder encoder)
    cryoal train subtomograms.h5 --out "from_$start" --preset student --student none \
        --val-fraction 0.9 --set steps=300 --batch-size 16 --no-progress "${extra[@]}" \
        | grep -A4 '^validation' | tail -1 \
        | awk -F'│' -v s="$start" '{gsub(/ /, "", $3); gsub(/ /, "", $4);
              print "teacher from " s ": accuracy " $3 ", macro-F1 " $4 " on the 360 held out"}'
done

step "2. a simulated tomogram with ground-truth picks (STAR, CSV) and a label volume"
cryoal simulate tomogram sim --shape 64 256 256 --particles 120 --classes 2 --snr 1 --seed 3
cryoal info sim/tomogram.mrc
cryoal info sim/particles.star

step "3. subtomograms cut around the picks (memory-mapped) into an HDF5 store"
cryoal extract sim/tomogram.mrc sim/particles.star particles.h5 --box 24 --classes ring,barrel --tomo-id sim_tomo
cryoal info particles.h5

step "4. a labelling project: candidates, round 0, expert labels, teacher + student, round 1 ranked by the teacher (defaults.strategy auto: margin+div-emb+cap+explore)"
cryoal project init myproj --classes ring,barrel --box 24
cryoal project add-tomogram myproj sim/tomogram.mrc --tomo-id sim_tomo
cryoal project import-picks myproj sim/particles.star
cryoal suggest myproj --strategy random --k 64
python "$repo/scripts/demo_expert.py" myproj/rounds/000/suggestions.csv sim/ground_truth.csv round0.csv
cryoal labels import myproj round0.csv --annotator demo-expert
# a quarter of the labels (16) held out: the teacher's validation accuracy is printed
cryoal train myproj --preset tiny --student-preset tiny --epochs 30 --lr 0.01 --batch-size 8 \
    --val-fraction 0.25
cryoal suggest myproj --k 16
python "$repo/scripts/demo_expert.py" myproj/rounds/001/suggestions.csv sim/ground_truth.csv round1.csv
cryoal labels import myproj round1.csv --annotator demo-expert
cryoal status myproj
cryoal labels export myproj --format star --out labels.star

step "5. active-learning benchmark (smoke preset): strategies x seeds with a simulated oracle"
cryoal benchmark --preset smoke --out al_smoke
cat al_smoke/summary.md

step "done"
echo "outputs in demo_output/: preview.png, subtomograms.h5, encoder/, from_scratch/, from_encoder/,"
echo "sim/, particles.h5, myproj/,"
echo "labels.star, al_smoke/{curves.csv,summary.md,curves.png}"
