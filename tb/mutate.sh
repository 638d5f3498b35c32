#!/usr/bin/env bash
# Mutation testing of the testbench: applies one RTL mutation at a time to a copy of the
# tree, runs the tests and a short regression on it, and reports whether the testbench
# noticed (DETECTED, with the first failing test) or not (SURVIVED).
#
#   bash tb/mutate.sh                 every mutation
#   bash tb/mutate.sh NAME...         only these
#   bash tb/mutate.sh --list          names and descriptions
#   bash tb/mutate.sh --check         only check that every edit applies to rtl/ and that
#                                     each mutant passes `verilator --lint-only -Wall`
#
# Environment:
#   MUTATE_DIR         work area (default ${TMPDIR:-/tmp}/iommu-tb-mutate): the tree copy and
#                      the cargo target directory shared by every mutation, so only the
#                      verilated model is rebuilt. Never the project's own target directory:
#                      a mutant's binaries would replace the real ones there.
#   MUTATE_SEEDS       seeds of `iommu-tb regress` after the tests (default 50)
#   MUTATE_TIMEOUT     seconds per test target before it counts as hung (default 900)
#
# The checkout's rtl/ is never modified: the working tree (uncommitted edits included; target/,
# .git and .venv left out) is copied once, and each mutation edits the copy and is undone
# before the next. The unmutated copy must pass first. Exit status: 0 when every mutation is
# detected, 1 when one survives, 2 on a usage or setup error (an edit that does not apply
# exactly once, or a mutant that does not build, e.g. by lint, is a setup error).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTATE_DIR:-${TMPDIR:-/tmp}/iommu-tb-mutate}
seeds=${MUTATE_SEEDS:-50}
limit=${MUTATE_TIMEOUT:-900}
tree=$work/tree
logs=$work/logs
export CARGO_TARGET_DIR=$work/target
export CARGO_TERM_COLOR=never

# ---------------------------------------------------------------------------------------------
# The mutations: name, file, what the bug is, the exact text to replace (must occur exactly
# once in the file), and its replacement.
# ---------------------------------------------------------------------------------------------
names=() files=() descs=() olds=() news=()
mut() { names+=("$1"); files+=("$2"); descs+=("$3"); olds+=("$4"); news+=("$5"); }

mut iotlb-pasid-tag rtl/iommu_iotlb.sv \
  "IOTLB lookup ignores the PASID tag (RID- and PASID-tagged entries alias)" \
  'way_did[i] == lk_did_i && way_pasid[i] == lk_pasid_i' \
  'way_did[i] == lk_did_i && (way_pasid[i] == lk_pasid_i || 1'"'"'b1)'
mut iotlb-did-tag rtl/iommu_iotlb.sv \
  "IOTLB lookup ignores the DID tag" \
  'tag_match[i] = way_did[i] == lk_did_i && way_pasid[i]' \
  'tag_match[i] = (way_did[i] == lk_did_i || 1'"'"'b1) && way_pasid[i]'
mut perm-write-ss rtl/iommu_pkg.sv \
  "second stage: a write without W is allowed" \
  $'        if (!write && !l.r) return FrReadDenied;\n        if (write && !l.w) return FrWriteDenied;\n' \
  $'        if (!write && !l.r) return FrReadDenied;\n'
mut perm-write-fs rtl/iommu_pkg.sv \
  "first stage: a write without R/W is allowed" \
  $'        if (!pmr && !l.us) return FrFsUserAccess;\n        if (write && !l.w) return FrWriteDenied;\n' \
  $'        if (!pmr && !l.us) return FrFsUserAccess;\n'
mut perm-us rtl/iommu_pkg.sv \
  "first stage: a user request to a supervisor page (U/S=0) is allowed" \
  $'        if (!pmr && !l.us) return FrFsUserAccess;\n' \
  ''
mut perm-xd rtl/iommu_pkg.sv \
  "first stage: execute of an XD page is allowed" \
  $'        if (er && l.xd) return FrFsExecute;\n' \
  ''
mut ats-w-bit rtl/iommu_pkg.sv \
  "Translation Completion: W reported set whatever the page allows (W on a read-only page)" \
  $'      wr  = l.w;\n' \
  $'      wr  = 1\'b1 | l.w;\n'
mut ats-dte-ignored rtl/iommu_walker.sv \
  "a Translation Request or translated request through a context entry with DTE = 0 is served" \
  'if (req_i.at != AtUntranslated && !ctx0.dte) begin' \
  'if (req_i.at != AtUntranslated && !ctx0.dte && 1'"'"'b0) begin'
mut pmr-sre rtl/iommu_pkg.sv \
  "PMR with SRE=0 is not a fault" \
  $'    if (eff_pmr(p, r) && !p.sre) return FrPmrDisabled;\n' \
  ''
mut hit-perm rtl/iommu_top.sv \
  "IOTLB hit path skips the permission check (a read-filled entry serves a write)" \
  $': leaf_check(pc_info.pgtt, tl_leaf, a_req.write,\n                                                  eff_pmr(pc_info, a_req), eff_er(a_req)))' \
  ': FrNone)'
mut psi-no-addr-match rtl/iommu_iotlb.sv \
  "page-selective IOTLB invalidation skips the address match (flushes the whole DID; legal over-invalidation, caught only by a precision check)" \
  'InvDidPage:      inv_hit[i] = did_ok && addr_ok;' \
  'InvDidPage:      inv_hit[i] = did_ok;'
mut psi-superpage rtl/iommu_iotlb.sv \
  "page-selective invalidation ignores the entry's page size (a 4K flush inside a 2M/1G entry misses it)" \
  'ignore   = range_mask | way_mask[i];' \
  'ignore   = range_mask;'
mut psi-am rtl/iommu_iotlb.sv \
  "page-selective invalidation ignores the address mask (AM): a range flush removes one page" \
  "range_mask = (inv_cmd_i.am >= 6'd36) ? '1 : pfn_t'((64'd1 << inv_cmd_i.am) - 64'd1);" \
  "range_mask = (inv_cmd_i.am >= 6'd36) ? '1 : '0;"
mut piotlb-gran rtl/iommu_qi.sv \
  "PASID-selective IOTLB invalidation (type 6, granularity 2) is executed as page-selective" \
  "dec_cmd.kind  = (gran == 2'd3) ? InvDidPasidPage : InvDidPasid;" \
  'dec_cmd.kind  = InvDidPasidPage;'
mut pcache-pasid-inv rtl/iommu_pasid_cache.sv \
  "PASID-cache invalidation of one (DID, PASID) removes nothing" \
  'InvDidPasid: inv_hit[i] = did_ok && pasid_ok;' \
  "InvDidPasid: inv_hit[i] = did_ok && pasid_ok && 1'b0;"
mut ccache-device-inv rtl/iommu_pasid_cache.sv \
  "device-selective context-cache invalidation removes nothing" \
  'InvSid:      inv_hit[i] = sid_ok;' \
  "InvSid:      inv_hit[i] = sid_ok && 1'b0;"
mut walker-pte-rsvd rtl/iommu_walker.sv \
  "page walk: bit 51 of a table entry is not checked as reserved (bits 50:48 still are)" \
  "localparam logic [63:0] PteAboveHaw = 64'h000F_0000_0000_0000;" \
  "localparam logic [63:0] PteAboveHaw = 64'h0007_0000_0000_0000;"
mut walker-ps-level4 rtl/iommu_walker.sv \
  "page walk: PS=1 in a level-4 entry (reserved) is not a fault" \
  "(ps && level_q == 3'd4) || " \
  ''
mut fpd-pasid-entry rtl/iommu_walker.sv \
  "the PASID entry's FPD is ignored (its faults are recorded)" \
  'fpd:      fpd_q | pe0.fpd,' \
  'fpd:      fpd_q,'
mut frcd-overwrite rtl/iommu_regfile.sv \
  "fault recording overwrites a pending record instead of setting PFO" \
  'end else if (frcd_f_q[fr_next_q]) begin' \
  "end else if (1'b0) begin"
mut frcd-pasid rtl/iommu_top.sv \
  "fault records carry PASID 0" \
  "pasid:  r_req.has_pasid ? r_req.pasid : '0," \
  "pasid:  r_req.has_pasid ? r_req.pasid & '0 : '0,"
mut tlp-two-pasid-prefixes rtl/iommu_tlp_decode.sv \
  "a TLP with two PASID prefixes is not malformed" \
  'if (prefix_i[i][31:24] != PrefixPasid || has_pasid) begin' \
  'if (prefix_i[i][31:24] != PrefixPasid) begin'
mut tlp-crossing rtl/iommu_tlp_decode.sv \
  "the 4 KiB crossing check is off by one DW" \
  "assign crosses = ({1'b0, addr[11:2]} + len_dw) > 11'd1024;" \
  "assign crosses = ({1'b0, addr[11:2]} + len_dw) > 11'd1025;"
mut qi-wait-no-drain rtl/iommu_qi.sv \
  "a wait descriptor completes without waiting for translations in flight" \
  '        end else if (xlate_idle_i && !ats_busy_i) begin' \
  "        end else if ((xlate_idle_i || 1'b1) && !ats_busy_i) begin"
mut wait-no-inv-cpl rtl/iommu_qi.sv \
  "a wait descriptor completes without waiting for the Invalidate Completions of the device-TLB invalidations before it" \
  '        end else if (xlate_idle_i && !ats_busy_i) begin' \
  "        end else if (xlate_idle_i && (!ats_busy_i || 1'b1)) begin"
mut pdevtlb-no-prefix rtl/iommu_qi.sv \
  "type 8 (PASID-based device-TLB) is sent without its PASID prefix (the PASID is ignored)" \
  'assign ats_req_pasid_valid_o = typ == DescPdtlb;' \
  "assign ats_req_pasid_valid_o = typ == DescPdtlb && 1'b0;"
mut inv-cpl-any-device rtl/iommu_ats_inv.sv \
  "an Invalidate Completion from any device frees the ITags it names" \
  'if (cpl_itags_i[i] && out_q[i] && sid_q[i] == cpl_rid_i) begin' \
  "if (cpl_itags_i[i] && out_q[i] && (sid_q[i] == cpl_rid_i || 1'b1)) begin"
mut pdevtlb-wrong-pasid rtl/iommu_ats_inv.sv \
  "the PASID prefix of an Invalidate Request carries PASID 0" \
  "assign msg_prefix_o       = {PrefixPasid, 4'b0000, eg_pasid_q};" \
  "assign msg_prefix_o       = {PrefixPasid, 4'b0000, eg_pasid_q & 20'h0};"
mut hit-passes-posted-write rtl/iommu_top.sv \
  "a translated request leaves before an earlier posted write that is still walking (PCIe ordering)" \
  '      a_may_go = !mq_blocked;' \
  "      a_may_go = !mq_blocked || 1'b1;"
mut wait-no-drain-walks rtl/iommu_top.sv \
  "a wait completes while requests are in the miss queue (walks begun before it still running)" \
  'assign xlate_idle = !a_valid_q && !e_valid_q && mq_empty;' \
  "assign xlate_idle = !a_valid_q && !e_valid_q && (mq_empty || 1'b1);"
mut walk-fills-after-inv rtl/iommu_miss_queue.sv \
  "a walk in flight when an invalidation took effect still fills the caches (stale refill)" \
  'assign fill_o      = cpl && !wk_stale[cpl_idx] && !inv_i' \
  'assign fill_o      = cpl && !inv_i'
mut walk-start-stale-slot rtl/iommu_walker.sv \
  "a walk that starts in the cycle an invalidation takes effect is checked against its slot's previous request (stale refill through a removed paging-structure entry)" \
  '(start_i ? start_page_i : req_i.addr[HawBits-1:12])' \
  "(start_i && 1'b0 ? start_page_i : req_i.addr[HawBits-1:12])"
mut psc-ih-ignored rtl/iommu_psc.sv \
  "page-selective IOTLB invalidation with IH = 0 keeps the paging-structure entries (IH ignored)" \
  'InvDidPage:      inv_hit[i] = !inv_cmd_i.ih && did_ok && addr_ok;' \
  "InvDidPage:      inv_hit[i] = (inv_cmd_i.ih || 1'b1) && 1'b0 && did_ok && addr_ok;"
mut psc-piotlb-kept rtl/iommu_psc.sv \
  "PASID-based IOTLB invalidations (type 6) leave the paging-structure entries" \
  $'InvDidPasid:     inv_hit[i] = did_ok && fs_pasid_ok;\n            InvDidPasidPage: inv_hit[i] = !inv_cmd_i.ih && did_ok && fs_pasid_ok && addr_ok;' \
  $'InvDidPasid:     inv_hit[i] = did_ok && fs_pasid_ok && 1\'b0;\n            InvDidPasidPage: inv_hit[i] = !inv_cmd_i.ih && did_ok && fs_pasid_ok && addr_ok && 1\'b0;'
mut two-walks-one-page rtl/iommu_miss_queue.sv \
  "misses to one page each walk (no shared walk): both walks fill" \
  'same_walk[s] = valid_q[s] && !follow_q[s]' \
  "same_walk[s] = 1'b0 && valid_q[s] && !follow_q[s]"

mut ccache-device-as-global rtl/iommu_qi.sv \
  "device-selective context-cache invalidation executed as global (legal over-invalidation, caught by the cache reference model's must-hit)" \
  "dec_cmd.kind = (gran == 2'd3) ? InvSid : InvAll;" \
  'dec_cmd.kind = InvAll;'
mut ccache-global-as-device rtl/iommu_qi.sv \
  "global context-cache invalidation executed as device-selective (SID 0): other devices' entries survive" \
  "dec_cmd.kind = (gran == 2'd3) ? InvSid : InvAll;" \
  'dec_cmd.kind = InvSid;'
mut iotlb-plru-no-hit-update rtl/iommu_iotlb.sv \
  "IOTLB hits do not update the PLRU tree (only fills do): a recently used page is evicted" \
  '.lk_use_i      (lk_use_i),' \
  ".lk_use_i      (lk_use_i && 1'b0),"
mut plru-mru-victim rtl/iommu_plru.sv \
  "tree PLRU points toward the used way: the victim is the most recently used" \
  't[node] = ~idx[IdxBits-1-l];' \
  't[node] = idx[IdxBits-1-l];'
mut gcmd-always-srtp rtl/iommu_regfile.sv \
  "every GCMD write acts as SRTP (latches RTADDR)" \
  'if (wdata[GcmdSrtp]) begin' \
  "if (1'b1) begin"
mut ics-iwc-write-clears rtl/iommu_regfile.sv \
  "ICS.IWC clears on any write, not only when 1 is written" \
  'if (wr_hi && slot == SlotIcs && wdata[32]) iwc_d = 1'"'"'b0;' \
  'if (wr_hi && slot == SlotIcs) iwc_d = 1'"'"'b0;'
mut feuaddr-not-kept rtl/iommu_regfile.sv \
  "FEUADDR ignores writes" \
  'if (wr_hi) feuaddr_d = wdata[63:32];' \
  ''
mut qi-wait-repeats rtl/iommu_qi.sv \
  "after a wait's status write the queue head does not advance: the queue fetches and writes the same wait forever (later submissions time out)" \
  $'        if (rsp) begin\n          head_d  = next_head(head_q);\n' \
  $'        if (rsp) begin\n'
mut csr-spurious-rvalid rtl/iommu_regfile.sv \
  "the register file raises csr_rvalid every cycle, asked or not (caught by the CSR response monitor)" \
  'rvalid_d = csr_valid_i && csr_ready_o;' \
  "rvalid_d = 1'b1;"
mut park-no-record rtl/iommu_top.sv \
  "a fault parked behind older requests loses its record" \
  "'{fault: a_fault, record: a_record," \
  "'{fault: a_fault, record: 1'b0,"
mut park-pa rtl/iommu_top.sv \
  "a hit parked behind older requests leaves with its untranslated address" \
  'pa: a_pa, ats: hit_ats}' \
  'pa: a_req.addr, ats: hit_ats}'
mut park-skips-order rtl/iommu_miss_queue.sv \
  "a parked request counts as older than every queued one (passes them at retirement)" \
  'older_q[free_idx]  <= valid_q;' \
  'older_q[free_idx]  <= alloc_park_i ? '"'"'0 : valid_q;'
# ---------------------------------------------------------------------------------------------

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

selected=()
check=
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    --list)
      for i in "${!names[@]}"; do printf '%-24s %-26s %s\n' "${names[$i]}" "${files[$i]}" "${descs[$i]}"; done
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option $a" >&2; usage >&2; exit 2 ;;
    *)
      found=
      for i in "${!names[@]}"; do [ "${names[$i]}" = "$a" ] && found=$i; done
      if [ -z "$found" ]; then echo "no mutation named $a (see --list)" >&2; exit 2; fi
      selected+=("$found") ;;
  esac
done
if [ "${#selected[@]}" -eq 0 ]; then selected=("${!names[@]}"); fi

command -v python3 >/dev/null || { echo "python3 is needed to apply the edits" >&2; exit 2; }

# Replaces OLD by NEW in FILE; fails unless OLD occurs exactly once.
apply() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.stderr.write(f"{path}: the text to mutate occurs {n} times (need exactly 1):\n{old}\n")
    sys.exit(1)
open(path, "w").write(text.replace(old, new))
PY
}

if [ -n "$check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  bad=0
  # The RTL sources in the order the build reads them (the `rtl` fileset of fusesoc.core).
  srcs=$(sed -n '/^  rtl:/,/file_type/p' "$root/fusesoc.core" | grep -oE 'rtl/[A-Za-z0-9_]+\.sv')
  top=$(sed -n 's/^ *toplevel: *//p' "$root/fusesoc.core" | head -n1)
  vl=${VERILATOR:-verilator}
  command -v "$vl" >/dev/null || { echo "$vl not found: --check lints every mutant" >&2; exit 2; }
  for i in "${selected[@]}"; do
    rm -rf "$tmp/rtl" && cp -r "$root/rtl" "$tmp/rtl"
    if ! apply "$tmp/${files[$i]}" "${olds[$i]}" "${news[$i]}" \
      || cmp -s "$tmp/${files[$i]}" "$root/${files[$i]}"; then
      echo "DOES NOT APPLY: ${names[$i]}"; bad=1
    elif ! (cd "$tmp" && "$vl" --lint-only -Wall $srcs --top-module "$top") >"$tmp/lint.log" 2>&1; then
      echo "DOES NOT LINT: ${names[$i]}"; sed 's/^/    /' "$tmp/lint.log" | head -n 8; bad=1
    else
      echo "applies and lints: ${names[$i]}"
    fi
  done
  exit $((bad * 2))
fi

# The test targets, cheapest and most pointed first; then any others tb/tests/ holds.
targets=()
for t in translation fault_codes iotlb invalidation queue recording timing registers untranslated coverage regress; do
  [ -f "$root/tb/tests/$t.rs" ] && targets+=("$t")
done
# A test target is a file tb/tests/NAME.rs or a folder tb/tests/NAME/main.rs (the RTL tests).
for f in "$root"/tb/tests/*.rs "$root"/tb/tests/*/main.rs; do
  [ -f "$f" ] || continue
  t=$(basename "$f" .rs)
  [ "$t" = main ] && t=$(basename "$(dirname "$f")")
  case " ${targets[*]} " in *" $t "*) ;; *) targets+=("$t") ;; esac
done

mkdir -p "$work" "$logs"
echo "copying $root to $tree (without target/, .git, .venv)"
rm -rf "$tree" && mkdir -p "$tree"
tar -C "$root" --exclude=./target --exclude=./.git --exclude=./.venv -cf - . | tar -C "$tree" -xf - \
  || { echo "copy failed" >&2; exit 2; }
# tar keeps the files' times; the shared target directory may hold the last run's mutant,
# built later than them. Fresh times make the first build re-verilate the real RTL.
touch "$tree"/rtl/* "$tree/fusesoc.core"
mkdir -p "$work/orig"

# Runs the test targets, then the regression, on the tree as it is. Prints one line:
# PASS, or FAIL <what failed first>. The full output goes to $1.
run_suite() {
  local log=$1 t first
  : >"$log"
  if ! (cd "$tree" && timeout "$limit" cargo build --release -p iommu-tb --tests --bins) >>"$log" 2>&1; then
    echo "BUILD"; return
  fi
  for t in lib "${targets[@]}"; do
    local sel=(--test "$t")
    [ "$t" = lib ] && sel=(--lib)
    (cd "$tree" && timeout "$limit" cargo test --release -p iommu-tb "${sel[@]}") >>"$log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
      first=$(grep -m1 -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/')
      if [ $rc -eq 124 ]; then first="${first:-hung (timeout ${limit}s)}"; fi
      echo "FAIL $t::${first:-?}"; return
    fi
  done
  (cd "$tree" && timeout "$limit" "$CARGO_TARGET_DIR/release/iommu-tb" regress --seeds "$seeds" --jobs 2) >>"$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    first=$(grep -m1 -oE 'FAIL [^:]*seed [0-9a-fx]+' "$log" || true)
    echo "FAIL regress --seeds $seeds: ${first:-exit $rc}"; return
  fi
  echo "PASS"
}

t_all=$(date +%s)
echo "baseline (unmutated copy) ..."
base=$(run_suite "$logs/baseline.log")
if [ "$base" != PASS ]; then
  echo "the unmutated tree does not pass ($base); see $logs/baseline.log" >&2
  exit 2
fi
echo "baseline passes ($(( $(date +%s) - t_all )) s)"

results=()
survived=0
unbuilt=0
for i in "${selected[@]}"; do
  name=${names[$i]} file=${files[$i]}
  t0=$(date +%s)
  cp "$tree/$file" "$work/orig/$name"
  if ! apply "$tree/$file" "${olds[$i]}" "${news[$i]}"; then
    cp "$work/orig/$name" "$tree/$file"
    echo "mutation $name did not apply to $file: fix the mutation list" >&2
    exit 2
  fi
  if cmp -s "$tree/$file" "$work/orig/$name"; then
    echo "mutation $name left $file unchanged" >&2
    exit 2
  fi
  res=$(run_suite "$logs/$name.log")
  # Undo (a fresh mtime, so the next build re-verilates).
  cp "$work/orig/$name" "$tree/$file"
  dt=$(( $(date +%s) - t0 ))
  case $res in
    PASS)  verdict=SURVIVED; how="every test and regress --seeds $seeds passed"; survived=$((survived + 1)) ;;
    BUILD) verdict="NOT BUILT"; how="fix the mutation: see $logs/$name.log"; unbuilt=$((unbuilt + 1)) ;;
    *)     verdict=DETECTED; how=${res#FAIL } ;;
  esac
  line=$(printf '| %s | `%s` | %s | %s | %s | %d s |' "$name" "$file" "${descs[$i]}" "$verdict" "$how" "$dt")
  results+=("$line")
  echo "$line"
done

echo
echo "| mutation | file | bug | verdict | first failure | time |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "$(( ${#selected[@]} - survived - unbuilt )) detected, $survived survived, $unbuilt not built; wall time $(( $(date +%s) - t_all )) s; logs in $logs"
if [ "$unbuilt" -gt 0 ]; then exit 2; fi
[ "$survived" -eq 0 ]
