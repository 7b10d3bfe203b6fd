process PREPARE {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/environment.yml"

    input:
    // input/1/reads.fa, input/2/reads.fa: two files of one sample with the same name never collide
    tuple val(meta), path(fasta, stageAs: 'input/?/*')
    val chunk_length

    output:
    tuple val(meta), path("shards/*.nuc.fa"), path("shards/*.prot.fa"), emit: shards
    tuple val(meta), path("shards/reads.tsv")                          , emit: reads
    tuple val(meta), path("shards/manifest.json")                      , emit: manifest
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    virnucpro prepare \\
        ${fasta} \\
        --outdir shards \\
        --prefix ${prefix} \\
        --chunk-length ${chunk_length} \\
        --workers ${task.cpus} \\
        --allow-empty \\
        --quiet \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p shards
    echo '>r1_1F1' > shards/${prefix}_0001.nuc.fa
    echo '>r1_1F1' > shards/${prefix}_0001.prot.fa
    echo '>r2_1F1' > shards/${prefix}_0002.nuc.fa
    echo '>r2_1F1' > shards/${prefix}_0002.prot.fa
    printf 'read_id\\tfile\\tstatus\\n' > shards/reads.tsv
    echo '{"shards": [{"nuc": "${prefix}_0001.nuc.fa", "frames": 1}, {"nuc": "${prefix}_0002.nuc.fa", "frames": 1}]}' > shards/manifest.json
    """
}
